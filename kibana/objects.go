package kibana

import (
	"github.com/batchaudit/batchaudit/store/esstore"
	"github.com/batchaudit/batchaudit/store/merkle"
)

// DefaultPrefix is the audit exporter's default index_prefix; the committed
// NDJSON is generated for it.
const DefaultPrefix = "batchaudit"

// CommittedFile is the NDJSON for DefaultPrefix, in this package's directory.
const CommittedFile = "batchaudit.ndjson"

// Placeholders in the queries of the saved searches "Record history" and
// "Actor activity" and of the "Run detail" dashboard: replace them in
// Kibana's query bar, or open the URLs that RecordHistoryURL and
// RunDetailURL build.
const (
	RecordIDPlaceholder = "RECORD_ID"
	ActorIDPlaceholder  = "ACTOR_ID"
	BatchIDPlaceholder  = "BATCH_ID"
)

// The objects below are the one definition of batchaudit's Kibana content.
// Every field named here is checked against the installed index mappings
// (fields_test.go) and every query and aggregation is run against a trail
// written by the built collector (testbed/kibana_test.go). Ids never change
// between releases: a re-import overwrites.
//
// A new index of the trail is one more dataView in dataViews and the
// objects that use it.

// Field formats (Kibana's field format ids and parameters).
var (
	counter  = fieldFormat{ID: "number", Params: map[string]any{"pattern": "0,0"}}
	ordinal  = fieldFormat{ID: "number", Params: map[string]any{"pattern": "0"}} // a sequence number: no separators
	hashText = fieldFormat{ID: "string", Params: map[string]any{"transform": false}}
	seconds  = fieldFormat{ID: "duration", Params: map[string]any{"inputFormat": "seconds",
		"outputFormat": "humanizePrecise", "outputPrecision": 2, "includeSpaceWithSuffix": true}}
)

var (
	eventsView = &dataView{
		id: "batchaudit-events", name: "batchaudit events", index: esstore.EventsIndex, timeField: "@timestamp",
		formats: map[string]fieldFormat{
			"event.sequence": ordinal, "event.hash": hashText, "batchaudit.record.hash": hashText,
			"batchaudit.record.previous_hash": hashText, "batchaudit.lineage.input_hash": hashText,
			"batchaudit.batch.records.read": counter, "batchaudit.batch.records.written": counter,
			"batchaudit.batch.records.skipped": counter, "batchaudit.batch.records.errored": counter,
			"batchaudit.lineage.record_count": counter, "batchaudit.checkpoint.records_processed": counter,
		},
		popular: []string{"event.action", "batchaudit.batch.id", "batchaudit.record.id", "batchaudit.change.type",
			"batchaudit.target.dataset", "batchaudit.job.name", "user.id", "event.outcome", "batchaudit.finding.type", "message"},
	}
	runsView = &dataView{
		id: "batchaudit-runs", name: "batchaudit runs", index: esstore.RunsIndex, timeField: "start",
		formats: map[string]fieldFormat{
			"duration_seconds": seconds, "read": counter, "written": counter, "skipped": counter, "errored": counter,
			"inserted": counter, "updated": counter, "deleted": counter, "unchanged": counter, "findings": counter,
			"events": counter,
		},
		popular: []string{"job_name", "status", "batch_id", "duration_seconds", "written", "findings", "actor.id"},
	}
	deadLettersView = &dataView{
		id: "batchaudit-deadletters", name: "batchaudit dead letters", index: esstore.DeadLettersIndex,
		timeField: "@timestamp",
		formats: map[string]fieldFormat{
			"event.sequence": ordinal, "event.hash": hashText, "batchaudit.existing_hash": hashText,
		},
		popular: []string{"batchaudit.conflict", "error.type", "batchaudit.reason", "event.id", "batchaudit.batch.id"},
	}
	checkpointsView = &dataView{
		id: "batchaudit-checkpoints", name: "batchaudit checkpoints", index: esstore.CheckpointsIndex,
		timeField: "created",
		formats:   map[string]fieldFormat{"size": ordinal, "root": hashText},
		popular:   []string{"stream", "size", "created", "root"},
	}
	reportsView = &dataView{
		id: "batchaudit-reports", name: "batchaudit reports", index: esstore.ReportsIndex, timeField: "generated_at",
		formats: map[string]fieldFormat{"content_sha256": hashText, "checkpoints.size": ordinal},
		popular: []string{"kind", "schedule", "from", "to", "filters", "location", "content_sha256"},
	}
	dataViews = []*dataView{eventsView, runsView, deadLettersView, checkpointsView, reportsView}
)

// failedStatuses are the run results that are failures (store.Run.Status;
// "skip" and "running" are not).
var failedStatuses = []string{"failure", "error", "timeout", "cancellation"}

var (
	timeAsc  = []sortField{{"@timestamp", "asc"}, {"event.sequence", "asc"}}
	timeDesc = []sortField{{"@timestamp", "desc"}, {"event.sequence", "desc"}}
)

// Saved searches.
var (
	recordHistory = &search{
		id: "batchaudit-search-record-history", title: "batchaudit: Record history (replace RECORD_ID)",
		description: "Every event about one record id, oldest first: reads, transforms, writes with their change type, " +
			"deletes, lineage. Replace RECORD_ID in the query with the record's id (keep the quotes), or open the link " +
			"that `batchaudit history <id> --kibana-url <url>` prints.",
		view: eventsView, query: where("batchaudit.record.id", RecordIDPlaceholder), sort: timeAsc,
		columns: []string{"event.action", "batchaudit.batch.id", "batchaudit.job.name", "batchaudit.change.type",
			"batchaudit.change.fields", "batchaudit.source.dataset", "batchaudit.target.dataset", "user.id",
			"batchaudit.record.hash"},
	}
	actorActivity = &search{
		id: "batchaudit-search-actor-activity", title: "batchaudit: Actor activity (replace ACTOR_ID)",
		description: "Everything one actor (user.id: the person or service account a job ran as) did, newest " +
			"first. Replace ACTOR_ID in the query with the actor's id (keep the quotes). Events derived by the " +
			"collector (deletes from snapshots, lineage, findings) carry no actor.",
		view: eventsView, query: where("user.id", ActorIDPlaceholder), sort: timeDesc,
		columns: []string{"event.action", "batchaudit.batch.id", "batchaudit.job.name", "batchaudit.record.id",
			"batchaudit.change.type", "batchaudit.target.dataset", "event.outcome"},
	}
	eventsInOrder = &search{
		id: "batchaudit-search-events", title: "batchaudit: Events in trail order",
		description: "All audit events, oldest first (then by sequence number). On the Run detail dashboard: " +
			"the events of one run.",
		view: eventsView, sort: timeAsc,
		columns: []string{"event.action", "batchaudit.batch.id", "batchaudit.record.id", "batchaudit.change.type",
			"batchaudit.source.dataset", "batchaudit.target.dataset", "event.outcome", "message"},
	}
	allRuns = &search{
		id: "batchaudit-search-runs", title: "batchaudit: Runs",
		description: "Every run with its status, duration and counters, newest first.",
		view:        runsView, sort: []sortField{{"start", "desc"}},
		columns: []string{"job_name", "batch_id", "status", "duration_seconds", "read", "written", "skipped",
			"errored", "inserted", "updated", "deleted", "unchanged", "findings", "events", "actor.id"},
	}
	failedRuns = &search{
		id: "batchaudit-search-failed-runs", title: "batchaudit: Failed runs",
		description: "Runs that ended with failure, error, timeout or cancellation, newest first.",
		view:        runsView, query: where("status", failedStatuses...), sort: []sortField{{"start", "desc"}},
		columns: []string{"job_name", "batch_id", "status", "duration_seconds", "read", "written", "errored",
			"findings", "actor.id"},
	}
	deletes = &search{
		id: "batchaudit-search-deletes", title: "batchaudit: Deleted records by dataset",
		description: "Every delete (stated by a job, or derived from a full snapshot: batchaudit.derived_by), " +
			"grouped by target dataset, newest first.",
		view: eventsView, query: where("batchaudit.change.type", "delete"),
		sort: []sortField{{"batchaudit.target.dataset", "asc"}, {"@timestamp", "desc"}, {"event.sequence", "desc"}},
		columns: []string{"batchaudit.target.dataset", "batchaudit.record.id", "batchaudit.job.name",
			"batchaudit.batch.id", "user.id", "batchaudit.derived_by"},
	}
	updates = &search{
		id: "batchaudit-search-updates", title: "batchaudit: Updated records by dataset",
		description: "Every update with its changed fields, grouped by target dataset, newest first.",
		view:        eventsView, query: where("batchaudit.change.type", "update"),
		sort: []sortField{{"batchaudit.target.dataset", "asc"}, {"@timestamp", "desc"}, {"event.sequence", "desc"}},
		columns: []string{"batchaudit.target.dataset", "batchaudit.record.id", "batchaudit.change.fields",
			"batchaudit.job.name", "batchaudit.batch.id", "user.id"},
	}
	findings = &search{
		id: "batchaudit-search-findings", title: "batchaudit: Findings (data loss, checksums, counts)",
		description: "Findings of the lineage processor, newest first: data_loss (read, then neither written, " +
			"skipped nor errored), write_without_read, checksum_break, count_mismatch, run_timeout.",
		view: eventsView, query: where("event.action", "batchaudit.finding"), sort: timeDesc,
		columns: []string{"batchaudit.finding.type", "batchaudit.finding.severity", "batchaudit.finding.message",
			"batchaudit.finding.record_ids", "batchaudit.job.name", "batchaudit.batch.id"},
	}
	notGaps     = whereNot("batchaudit.entry_kind", string(merkle.KindGap))
	deadLetters = &search{
		id: "batchaudit-search-dead-letters", title: "batchaudit: Dead letters",
		description: "Events that could not be kept as audit events (invalid, unhashable, rejected by " +
			"Elasticsearch, or conflicting with a stored event), with the reason, newest first. Gap entries " +
			"(numbers that hold no event, docs/storage.md) are left out.",
		view: deadLettersView, query: notGaps, sort: timeDesc,
		columns: []string{"error.type", "batchaudit.reason", "event.id", "event.action", "batchaudit.batch.id",
			"batchaudit.stream", "event.sequence"},
	}
	integrityAlarms = &search{
		id: "batchaudit-search-integrity-alarms", title: "batchaudit: Integrity alarms (conflicting resends)",
		description: "An event id arrived again with different content: the stored event is untouched, the new " +
			"content is kept here with both hashes.",
		view: deadLettersView, query: where("batchaudit.conflict", "true"), sort: timeDesc,
		columns: []string{"event.id", "batchaudit.batch.id", "event.hash", "batchaudit.existing_hash",
			"batchaudit.reason", "batchaudit.stream", "event.sequence"},
	}
	checkpoints = &search{
		id: "batchaudit-search-checkpoints", title: "batchaudit: Signed checkpoints",
		description: "The signed checkpoints of every stream's Merkle log as kept with the trail, newest first: the " +
			"tree size and root each signs (docs/integrity.md). The copy published outside the store is what " +
			"`batchaudit verify --checkpoints` compares them with.",
		view: checkpointsView, sort: []sortField{{"created", "desc"}, {"size", "desc"}},
		columns: []string{"stream", "size", "root", "note"},
	}
	reportList = &search{
		id: "batchaudit-search-reports", title: "batchaudit: Compliance reports",
		description: "Every recorded report (the reports extension's schedules, and `batchaudit report " +
			"--record-in-index`), newest first: kind, schedule, period, filters, where its signed files are, its " +
			"content hash and the checkpoint sizes its integrity attestation used.",
		view: reportsView, sort: []sortField{{"generated_at", "desc"}},
		columns: []string{"kind", "schedule", "from", "to", "filters", "location", "content_sha256", "checkpoints.size"},
	}
	searches = []*search{recordHistory, actorActivity, eventsInOrder, allRuns, failedRuns, deletes, updates,
		findings, deadLetters, integrityAlarms, checkpoints, reportList}
)

// Visualizations (legacy aggregation-based; README.md says why).
var (
	runsOverTime = &vis{
		id: "batchaudit-vis-runs-over-time", title: "batchaudit: Runs per day by status", view: runsView,
		kind: histogram, aggs: []agg{count("Runs"), perDay("start"), terms(group, "status", 10)},
	}
	eventsByType = &vis{
		id: "batchaudit-vis-events-by-type", title: "batchaudit: Events by type", view: eventsView,
		kind: table, aggs: []agg{count("Events"), terms(bucket, "event.action", 30)},
	}
	topJobs = &vis{
		id: "batchaudit-vis-top-jobs", title: "batchaudit: Top jobs", view: runsView, kind: table,
		aggs: []agg{count("Runs"), sum("read", "Read"), sum("written", "Written"), sum("errored", "Errored"),
			sum("findings", "Findings"), terms(bucket, "job_name", 10)},
	}
	failedRunsCount = &vis{
		id: "batchaudit-vis-failed-runs-count", title: "batchaudit: Failed runs (count)", view: runsView,
		kind: metric, query: failedRuns.query, aggs: []agg{count("Failed runs")},
	}
	findingsCount = &vis{
		id: "batchaudit-vis-findings-count", title: "batchaudit: Findings (count)", view: eventsView,
		kind: metric, query: findings.query, aggs: []agg{count("Findings")},
	}
	deadLettersCount = &vis{
		id: "batchaudit-vis-dead-letters-count", title: "batchaudit: Dead letters (count)", view: deadLettersView,
		kind: metric, query: notGaps, aggs: []agg{count("Dead letters")},
	}
	integrityAlarmsCount = &vis{
		id: "batchaudit-vis-integrity-alarms-count", title: "batchaudit: Integrity alarms (count)",
		view: deadLettersView, kind: metric, query: integrityAlarms.query, aggs: []agg{count("Integrity alarms")},
	}
	changesOverTime = &vis{
		id: "batchaudit-vis-changes-over-time", title: "batchaudit: Changes per dataset and day", view: eventsView,
		kind: histogram,
		aggs: []agg{count("Records"), terms(split, "batchaudit.target.dataset", 20), perDay("@timestamp"),
			terms(group, "batchaudit.change.type", 4)},
	}
	changesByDataset = &vis{
		id: "batchaudit-vis-changes-by-dataset", title: "batchaudit: Changes by dataset", view: eventsView,
		kind: table,
		aggs: []agg{count("Records"), terms(bucket, "batchaudit.target.dataset", 50),
			terms(bucket, "batchaudit.change.type", 4)},
	}
	findingsByKind = &vis{
		id: "batchaudit-vis-findings-by-kind", title: "batchaudit: Findings by kind and severity", view: eventsView,
		kind: table, query: findings.query,
		aggs: []agg{count("Findings"), terms(bucket, "batchaudit.finding.type", 10),
			terms(bucket, "batchaudit.finding.severity", 5)},
	}
	deadLettersOverTime = &vis{
		id: "batchaudit-vis-dead-letters-over-time", title: "batchaudit: Dead letters per day by reason",
		view: deadLettersView, kind: histogram,
		aggs: []agg{count("Dead letters"), perDay("@timestamp"), terms(group, "error.type", 10)},
	}
	// Checkpoint age: when each stream's log was last signed. A stream
	// whose latest checkpoint is old (or missing from the dashboard's time
	// range) has entries nothing signed yet.
	latestCheckpoint = &vis{
		id: "batchaudit-vis-latest-checkpoint", title: "batchaudit: Latest signed checkpoint", view: checkpointsView,
		kind: metric, aggs: []agg{maxOf("created", "Latest checkpoint")},
	}
	checkpointsPerStream = &vis{
		id: "batchaudit-vis-checkpoints-per-stream", title: "batchaudit: Checkpoint age per stream", view: checkpointsView,
		kind: table,
		aggs: []agg{count("Checkpoints"), maxOf("created", "Latest checkpoint"), maxOf("size", "Tree size"),
			terms(bucket, "stream", 50)},
	}
	visualizations = []*vis{runsOverTime, eventsByType, topJobs, failedRunsCount, findingsCount, deadLettersCount,
		integrityAlarmsCount, changesOverTime, changesByDataset, findingsByKind, deadLettersOverTime, latestCheckpoint,
		checkpointsPerStream}
)

// Dashboards. The grid is 48 columns wide.
var (
	overview = &dashboard{
		id: "batchaudit-dashboard-overview", title: "batchaudit: Audit overview", from: "now-30d", to: "now",
		description: "Runs over time by status, events by type, top jobs, failed runs, findings and recorded " +
			"compliance reports.",
		panels: []panel{
			{failedRunsCount, 0, 0, 12, 7}, {findingsCount, 12, 0, 12, 7}, {deadLettersCount, 24, 0, 12, 7},
			{integrityAlarmsCount, 36, 0, 12, 7},
			{runsOverTime, 0, 7, 24, 15}, {eventsByType, 24, 7, 24, 15},
			{topJobs, 0, 22, 48, 12},
			{failedRuns, 0, 34, 48, 12},
			{findings, 0, 46, 48, 12},
			{reportList, 0, 58, 48, 10},
		},
	}
	dataChanges = &dashboard{
		id: "batchaudit-dashboard-data-changes", title: "batchaudit: Data changes", from: "now-30d", to: "now",
		description: "Inserts, updates, deletes and unchanged writes per dataset over time, and the deleted and " +
			"updated records.",
		panels: []panel{
			{changesOverTime, 0, 0, 48, 20},
			{changesByDataset, 0, 20, 48, 12},
			{deletes, 0, 32, 24, 15}, {updates, 24, 32, 24, 15},
		},
	}
	dataLoss = &dashboard{
		id: "batchaudit-dashboard-data-loss", title: "batchaudit: Data loss & integrity", from: "now-30d", to: "now",
		description: "Findings by kind, dead letters, integrity alarms (conflicting resends) and the age of each " +
			"stream's latest signed checkpoint.",
		panels: []panel{
			{findingsCount, 0, 0, 12, 7}, {deadLettersCount, 12, 0, 12, 7}, {integrityAlarmsCount, 24, 0, 12, 7},
			{latestCheckpoint, 36, 0, 12, 7},
			{findingsByKind, 0, 7, 24, 15}, {deadLettersOverTime, 24, 7, 24, 15},
			{checkpointsPerStream, 0, 22, 48, 8},
			{findings, 0, 30, 48, 12},
			{integrityAlarms, 0, 42, 48, 10},
			{deadLetters, 0, 52, 48, 12},
		},
	}
	runDetail = &dashboard{
		id: "batchaudit-dashboard-run-detail", title: "batchaudit: Run detail (replace BATCH_ID)",
		from: "now-1y", to: "now", query: where("batchaudit.batch.id", BatchIDPlaceholder),
		description: "One run: its summary, events by type, changes by dataset, every event in order, its " +
			"findings and dead letters. Replace BATCH_ID in the query with the run's batch id (keep the quotes), " +
			"or open the link that `batchaudit events --batch <id> --kibana-url <url>` prints.",
		panels: []panel{
			{allRuns, 0, 0, 48, 7},
			{eventsByType, 0, 7, 24, 15}, {changesByDataset, 24, 7, 24, 15},
			{eventsInOrder, 0, 22, 48, 20},
			{findings, 0, 42, 24, 12}, {deadLetters, 24, 42, 24, 12},
		},
	}
	dashboards = []*dashboard{overview, dataChanges, dataLoss, runDetail}
)
