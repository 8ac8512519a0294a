package auditevent

import (
	"time"
)

// Dataset names a table, file or topic the OpenLineage way: a namespace
// (e.g. postgres://db:5432, s3://bucket) and a name (e.g. sales.orders).
type Dataset struct {
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
}

// IsZero reports whether no dataset is set.
func (d Dataset) IsZero() bool { return d.Namespace == "" && d.Name == "" }

// Actor is who ran or triggered the batch.
type Actor struct {
	ID    string   `json:"id,omitempty"`
	Name  string   `json:"name,omitempty"`
	Type  string   `json:"type,omitempty"`
	Roles []string `json:"roles,omitempty"`
}

// Transform describes one transformation step applied to a record.
type Transform struct {
	Name     string         `json:"name,omitempty"`
	Sequence int64          `json:"sequence,omitempty"`
	Type     string         `json:"type,omitempty"`
	Subtype  string         `json:"subtype,omitempty"`
	Params   map[string]any `json:"params,omitempty"`
}

// Counters are the record totals a job reports at batch end.
type Counters struct {
	Read    int64 `json:"read"`
	Written int64 `json:"written"`
	Skipped int64 `json:"skipped"`
	Errored int64 `json:"errored"`
}

// ChangeCounters are a run's change-type totals, set on the batch end event
// by cdcprocessor.
type ChangeCounters struct {
	Inserted  int64 `json:"inserted"`
	Updated   int64 `json:"updated"`
	Deleted   int64 `json:"deleted"`
	Unchanged int64 `json:"unchanged"`
}

// Retention is what a batchaudit.retention.prune event records: the
// stream's entries FromSequence..ThroughSequence were removed (every entry
// 1..ThroughSequence is then gone), Entries documents and Runs run
// summaries, all older than Cutoff (RFC 3339) and covered by the signed
// checkpoint of size CheckpointSize; Period is the retention period asked
// for and Minimum the configured minimum it respected (e.g. "400d").
type Retention struct {
	FromSequence    *int64
	ThroughSequence *int64
	Entries         *int64
	Runs            *int64
	CheckpointSize  *int64
	Cutoff          string
	Period          string
	Minimum         string
}

// Event is one canonical audit event. Its fields map one to one to log record
// fields and attributes (see attributes.go); attributes outside the model are
// kept in Extra so nothing a job sent is lost.
type Event struct {
	ID   string    // AttrEventID
	Name string    // log record EventName
	Time time.Time // log record Timestamp

	TraceID string // hex, from the log record
	SpanID  string // hex, from the log record

	BatchID       string
	ParentBatchID string
	BatchState    string
	BatchResult   string
	// RunType and LogicalDate are the run context a batch start carries:
	// normal, rerun, backfill or dry_run, and the date the run processes.
	RunType     string
	LogicalDate string
	Counters    *Counters       // batch end only
	Changes     *ChangeCounters // batch end only, set by cdcprocessor
	// BytesRead and BytesWritten are reported sizes (OpenLineage statistics).
	BytesRead    *int64
	BytesWritten *int64

	JobName      string
	JobNamespace string
	// JobVersion, JobConfigHash and JobConfig say which code with which
	// configuration ran; JobConfig only when its values are not secret.
	JobVersion    string
	JobConfigHash string
	JobConfig     map[string]any
	Actor         Actor
	// AuthPrincipal is who the collector authenticated as the sender; it is
	// set by the receiver only, never by a job (unlike Actor).
	AuthPrincipal string

	Source Dataset
	Target Dataset

	RecordID      string
	KeyFields     []string
	RecordHash    string
	HashAlgorithm string
	// SenderHash is the record hash as sent, kept when it is not the
	// canonical hash of the record data; HashCheck says how it relates.
	SenderHash   string
	HashCheck    string
	PreviousHash string
	RecordData   map[string]any
	SkipReason   string
	Partition    string

	ChangeType    string
	ChangedFields []string
	OldValue      map[string]any
	NewValue      map[string]any

	LineageID      string
	InputRecordIDs []string
	InputHash      string
	LineageChain   map[string]any
	InputDatasets  []string
	OutputDatasets []string
	ColumnLineage  map[string]any
	RecordCount    *int64

	Transform Transform

	CheckpointID       string
	CheckpointPosition string
	CheckpointRecords  *int64

	ValidationRule     string
	ValidationSeverity string
	ValidationColumn   string
	ValidationExpected any
	ValidationActual   any

	FindingType     string
	FindingSeverity string
	FindingRecords  []string
	FindingMessage  string

	Retention Retention

	Frameworks     []string
	Classification []string

	ErrorType       string
	ErrorMessage    string
	ErrorStacktrace string

	Original       string
	OriginalFormat string
	DerivedBy      string

	// Severity is the log record's SeverityText, if any.
	Severity string
	// Body is the log record body as a string, if any.
	Body string

	Extra map[string]any
}

// SetExtra stores an attribute outside the model.
func (e *Event) SetExtra(k string, v any) {
	if e.Extra == nil {
		e.Extra = map[string]any{}
	}
	e.Extra[k] = v
}
