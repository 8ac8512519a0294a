// Package auditevent is batchaudit's canonical audit-event model: the event
// names, the attribute keys, the Event type that every component reads and
// writes, its conversion to and from OpenTelemetry log records, and the
// validation rules per event type. docs/conventions.md documents the same
// model for people instrumenting jobs in any language.
package auditevent

// Event names, carried in the log record's EventName field.
const (
	BatchStart    = "batchaudit.batch.start"
	BatchProgress = "batchaudit.batch.progress"
	BatchEnd      = "batchaudit.batch.end"

	RecordRead      = "batchaudit.record.read"
	RecordTransform = "batchaudit.record.transform"
	RecordWrite     = "batchaudit.record.write"
	RecordSkip      = "batchaudit.record.skip"
	RecordError     = "batchaudit.record.error"
	// RecordDelete is a delete: stated by the job, or derived by cdcprocessor
	// for keys missing from a full snapshot.
	RecordDelete = "batchaudit.record.delete"

	ValidationPass = "batchaudit.validation.pass"
	ValidationFail = "batchaudit.validation.fail"

	Checkpoint = "batchaudit.checkpoint"

	// Derived by lineageprocessor.
	LineageRecord  = "batchaudit.lineage.record"
	LineageDataset = "batchaudit.lineage.dataset"
	Finding        = "batchaudit.finding"

	// OpenLineage JobEvent and DatasetEvent (static metadata, no run).
	OpenLineageJob     = "batchaudit.openlineage.job"
	OpenLineageDataset = "batchaudit.openlineage.dataset"

	// RetentionPrune records that `batchaudit retention` removed a stream's
	// oldest entries; it is written by that command only (the receiver
	// refuses it from jobs), and verification trusts a pruned prefix only
	// when such an event, covered by a signed checkpoint, records it.
	RetentionPrune = "batchaudit.retention.prune"
)

// Categories group event names for search and reports.
const (
	CategoryLifecycle  = "lifecycle"
	CategoryRecord     = "record"
	CategoryQuality    = "quality"
	CategoryCheckpoint = "checkpoint"
	CategoryLineage    = "lineage"
	CategoryFinding    = "finding"
	CategoryRetention  = "retention"
)

type nameInfo struct {
	category string
	// needsBatch: the event belongs to a batch run and must carry its id.
	needsBatch bool
}

var names = map[string]nameInfo{
	BatchStart:         {CategoryLifecycle, true},
	BatchProgress:      {CategoryLifecycle, true},
	BatchEnd:           {CategoryLifecycle, true},
	RecordRead:         {CategoryRecord, true},
	RecordTransform:    {CategoryRecord, true},
	RecordWrite:        {CategoryRecord, true},
	RecordSkip:         {CategoryRecord, true},
	RecordError:        {CategoryRecord, true},
	RecordDelete:       {CategoryRecord, true},
	ValidationPass:     {CategoryQuality, true},
	ValidationFail:     {CategoryQuality, true},
	Checkpoint:         {CategoryCheckpoint, true},
	LineageRecord:      {CategoryLineage, true},
	LineageDataset:     {CategoryLineage, true},
	Finding:            {CategoryFinding, false},
	OpenLineageJob:     {CategoryLineage, false},
	OpenLineageDataset: {CategoryLineage, false},
	RetentionPrune:     {CategoryRetention, false},
}

// Known reports whether name is one of the canonical event names.
func Known(name string) bool { _, ok := names[name]; return ok }

// KnownOrEmpty is name when it is a known event name, else "": what error
// messages may repeat of an invalid event's name (a value the client sent
// could be anything, personal data included).
func KnownOrEmpty(name string) string {
	if Known(name) {
		return name
	}
	return ""
}

// Category returns the category of a canonical event name, or "" if unknown.
func Category(name string) string { return names[name].category }

// Names returns every canonical event name.
func Names() []string {
	out := make([]string, 0, len(names))
	for n := range names {
		out = append(out, n)
	}
	return out
}

// Change types, as set by jobs or by cdcprocessor.
const (
	ChangeInsert   = "insert"
	ChangeUpdate   = "update"
	ChangeDelete   = "delete"
	ChangeNoChange = "no_change"
)

// Batch results on batch end events (aligned with cicd.pipeline.result).
const (
	ResultSuccess      = "success"
	ResultFailure      = "failure"
	ResultError        = "error"
	ResultTimeout      = "timeout"
	ResultCancellation = "cancellation"
	ResultSkip         = "skip"
)

var results = map[string]bool{ResultSuccess: true, ResultFailure: true, ResultError: true,
	ResultTimeout: true, ResultCancellation: true, ResultSkip: true}

var changeTypes = map[string]bool{ChangeInsert: true, ChangeUpdate: true, ChangeDelete: true, ChangeNoChange: true}

// Finding types, set by lineageprocessor on batchaudit.finding events.
const (
	FindingDataLoss         = "data_loss"          // read, then neither written, skipped nor errored
	FindingWriteWithoutRead = "write_without_read" // written with no matching read
	FindingChecksumBreak    = "checksum_break"     // a step's input hash differs from the previous output hash
	FindingCountMismatch    = "count_mismatch"     // job counters do not reconcile
	FindingRunTimeout       = "run_timeout"        // a run never ended
	// FindingLateEvent: an event arrived after its run settled and may
	// resolve one of the run's findings (which were decided without it).
	FindingLateEvent = "late_event"
)

// Finding severities.
const (
	SeverityCritical = "critical"
	SeverityHigh     = "high"
	SeverityMedium   = "medium"
	SeverityLow      = "low"
)
