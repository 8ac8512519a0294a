package auditevent

// Attribute keys of the canonical model. Standard semantic conventions are
// reused where they exist (log.record.uid, user.*, error.type, exception.*).
const (
	AttrEventID = "log.record.uid" // unique event id; the storage id
	// AttrEventName is read as the event name when the log record's
	// EventName field is empty.
	AttrEventName = "event.name"

	AttrBatchID       = "batchaudit.batch.id"
	AttrParentBatchID = "batchaudit.batch.parent_id"
	AttrBatchState    = "batchaudit.batch.state"  // OpenLineage eventType: START, RUNNING, COMPLETE, ABORT, FAIL, OTHER
	AttrBatchResult   = "batchaudit.batch.result" // success, failure, error, timeout, cancellation, skip
	AttrRecordsRead   = "batchaudit.batch.records.read"
	AttrRecordsWrite  = "batchaudit.batch.records.written"
	AttrRecordsSkip   = "batchaudit.batch.records.skipped"
	AttrRecordsError  = "batchaudit.batch.records.errored"
	// Run context, sent on batch start.
	AttrRunType     = "batchaudit.batch.run_type"     // normal, rerun, backfill, dry_run
	AttrLogicalDate = "batchaudit.batch.logical_date" // the date or interval start the run processes
	// Sizes a run reports (OpenLineage input/output statistics).
	AttrBytesRead    = "batchaudit.batch.bytes.read"
	AttrBytesWritten = "batchaudit.batch.bytes.written"
	// Change-type totals of a run, added to the batch end event by
	// cdcprocessor (they include no_change events it did not export).
	AttrRecordsInserted  = "batchaudit.batch.records.inserted"
	AttrRecordsUpdated   = "batchaudit.batch.records.updated"
	AttrRecordsDeleted   = "batchaudit.batch.records.deleted"
	AttrRecordsUnchanged = "batchaudit.batch.records.unchanged"

	AttrJobName      = "batchaudit.job.name"
	AttrJobNamespace = "batchaudit.job.namespace"
	AttrJobVersion   = "batchaudit.job.version"     // code version, e.g. a git sha
	AttrConfigHash   = "batchaudit.job.config_hash" // SHA-256 of the canonical JSON of the configuration
	AttrJobConfig    = "batchaudit.job.config"      // the configuration itself, when not secret

	// AttrAuthPrincipal is the principal the receiver authenticated the
	// request as (basic auth user, token subject, or a bearer token
	// fingerprint); set by the collector only.
	AttrAuthPrincipal = "batchaudit.auth.principal"

	AttrUserID    = "user.id"
	AttrUserName  = "user.name"
	AttrUserRoles = "user.roles"
	AttrActorType = "batchaudit.actor.type" // human, service, scheduler

	AttrSourceNamespace = "batchaudit.source.namespace"
	AttrSourceName      = "batchaudit.source.name"
	AttrTargetNamespace = "batchaudit.target.namespace"
	AttrTargetName      = "batchaudit.target.name"

	AttrRecordID        = "batchaudit.record.id"
	AttrRecordKeyFields = "batchaudit.record.key_fields"
	AttrRecordHash      = "batchaudit.record.hash"
	AttrHashAlgorithm   = "batchaudit.record.hash_algorithm"
	// AttrSenderHash keeps a record hash as sent when it is not the canonical
	// hash of the record data the event carries (batchaudit.record.hash is
	// then the canonical one, computed by the receiver); AttrHashCheck says
	// how it relates to the data (see HashCheck* values).
	AttrSenderHash   = "batchaudit.record.sender_hash"
	AttrHashCheck    = "batchaudit.record.hash_check"
	AttrPreviousHash = "batchaudit.record.previous_hash"
	AttrRecordData   = "batchaudit.record.data"
	AttrSkipReason   = "batchaudit.record.skip_reason"
	AttrPartition    = "batchaudit.record.partition"

	AttrChangeType    = "batchaudit.change.type"
	AttrChangedFields = "batchaudit.change.fields"
	AttrOldValue      = "batchaudit.change.old_value"
	AttrNewValue      = "batchaudit.change.new_value"

	AttrLineageID      = "batchaudit.lineage.id"
	AttrInputRecordIDs = "batchaudit.lineage.input_record_ids"
	AttrInputHash      = "batchaudit.lineage.input_hash"
	AttrLineageChain   = "batchaudit.lineage.chain"   // derived: the full chain (map)
	AttrInputDatasets  = "batchaudit.lineage.inputs"  // []string of namespace/name
	AttrOutputDatasets = "batchaudit.lineage.outputs" // []string of namespace/name
	AttrRecordCount    = "batchaudit.lineage.record_count"
	// AttrColumnLineage is OpenLineage's columnLineage facet, flattened:
	// output dataset (namespace/name) → output field (or "*" for inputs that
	// affect the whole dataset) → list of {namespace, name, field, transformations}.
	AttrColumnLineage = "batchaudit.lineage.columns"

	AttrTransformName     = "batchaudit.transform.name"
	AttrTransformSequence = "batchaudit.transform.sequence"
	AttrTransformType     = "batchaudit.transform.type"    // DIRECT, INDIRECT
	AttrTransformSubtype  = "batchaudit.transform.subtype" // IDENTITY, TRANSFORMATION, AGGREGATION, JOIN, FILTER, ...
	AttrTransformParams   = "batchaudit.transform.params"

	AttrCheckpointID       = "batchaudit.checkpoint.id"
	AttrCheckpointPosition = "batchaudit.checkpoint.position"
	AttrCheckpointRecords  = "batchaudit.checkpoint.records_processed"

	AttrValidationRule     = "batchaudit.validation.rule"
	AttrValidationSeverity = "batchaudit.validation.severity"
	AttrValidationColumn   = "batchaudit.validation.column"
	AttrValidationExpected = "batchaudit.validation.expected"
	AttrValidationActual   = "batchaudit.validation.actual"

	AttrFindingType     = "batchaudit.finding.type"
	AttrFindingSeverity = "batchaudit.finding.severity"
	AttrFindingRecords  = "batchaudit.finding.record_ids"
	AttrFindingMessage  = "batchaudit.finding.message"

	// What a batchaudit.retention.prune event records (see Retention).
	AttrPruneFrom       = "batchaudit.retention.from_sequence"
	AttrPruneThrough    = "batchaudit.retention.through_sequence"
	AttrPruneEntries    = "batchaudit.retention.entries"
	AttrPruneRuns       = "batchaudit.retention.runs"
	AttrPruneCheckpoint = "batchaudit.retention.checkpoint_size"
	AttrPruneCutoff     = "batchaudit.retention.cutoff"
	AttrPrunePeriod     = "batchaudit.retention.period"
	AttrPruneMinimum    = "batchaudit.retention.minimum"

	AttrFrameworks     = "batchaudit.compliance.frameworks" // SOX, GDPR, HIPAA
	AttrClassification = "batchaudit.data.classification"   // PII, PHI, financial

	AttrErrorType       = "error.type"
	AttrErrorMessage    = "exception.message"
	AttrErrorStacktrace = "exception.stacktrace"
	AttrOriginalEvent   = "batchaudit.original"        // the source document (e.g. an OpenLineage event) kept as evidence
	AttrOriginalFormat  = "batchaudit.original.format" // otlp, json, openlineage
	AttrDerivedBy       = "batchaudit.derived_by"      // component that produced a derived event
	// AttrRunEvents on a batch-run span says how its audit events travel;
	// RunEventsAsLogs means as log records, so receivers must not derive
	// them from the span again.
	AttrRunEvents = "batchaudit.run.events"
)

// RunEventsAsLogs is the value of AttrRunEvents set by jobaudit.
const RunEventsAsLogs = "logs"

// Values of AttrHashCheck.
const (
	// HashCheckPythonJSON: the sender's hash is SHA-256 of Python's
	// json.dumps(record, sort_keys=True) (default or compact separators):
	// a different format, consistent with the data.
	HashCheckPythonJSON = "python_json_sorted"
	// HashCheckMismatch: the sender's hash matches the record data in no
	// format the receiver knows; the data and the hash disagree.
	HashCheckMismatch = "mismatch"
)

// Run types (AttrRunType).
const (
	RunNormal   = "normal"
	RunRerun    = "rerun"
	RunBackfill = "backfill"
	RunDryRun   = "dry_run"
)
