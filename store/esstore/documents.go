package esstore

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/canonical"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/merkle"
)

// The event document is ECS-shaped for search and dashboards; the exact
// event lives in batchaudit.canonical: the canonical JSON that event.hash
// covers, verbatim as a string (sha256 of it is event.hash), not indexed.
// Reads rebuild the Event from it alone, so what comes back hashes exactly
// as what went in. Field names follow the attribute keys
// (docs/conventions.md) under batchaudit.*; see templates.go for the types.
//
// The document is written by hand (docWriter) rather than with
// encoding/json: it is the hot path of every Write.

// timeLayout writes nanoseconds, what date_nanos keeps and ordering needs.
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// date_nanos covers 1970 to 2262; an event time outside it is kept in the
// canonical content but not in @timestamp (else the whole event would be
// rejected). Such events sort first on reads.
var (
	minNanosTime = time.Unix(0, 0)
	maxNanosTime = time.Unix(0, 1<<63-1)
)

func formatTime(t time.Time) string {
	if t.Before(minNanosTime) || t.After(maxNanosTime) {
		return ""
	}
	return t.UTC().Format(timeLayout)
}

// docWriter appends a JSON object; keys are constants (no escaping
// needed), values go through the canonical encoder. Empty values are left
// out. The event's canonical encoding already succeeded, so its strings
// are valid UTF-8 and its numbers representable: errors here are bugs.
type docWriter struct {
	b     []byte
	comma bool
	err   error
}

func (w *docWriter) key(k string) {
	if w.comma {
		w.b = append(w.b, ',')
	}
	w.b = append(w.b, '"')
	w.b = append(w.b, k...)
	w.b = append(w.b, '"', ':')
	w.comma = true
}

func (w *docWriter) value(v any) {
	var err error
	if w.b, err = canonical.AppendJSON(w.b, v); err != nil && w.err == nil {
		w.err = err
	}
}

func (w *docWriter) str(k, v string) {
	if v != "" {
		w.key(k)
		w.string(v)
	}
}

// string appends a JSON string; plain strings (the usual case) are copied
// as they are, others go through the canonical encoder.
func (w *docWriter) string(s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' {
			w.value(s)
			return
		}
	}
	w.b = append(w.b, '"')
	w.b = append(w.b, s...)
	w.b = append(w.b, '"')
}

func (w *docWriter) strs(k string, v []string) {
	if len(v) == 0 {
		return
	}
	w.key(k)
	w.b = append(w.b, '[')
	for i, s := range v {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.string(s)
	}
	w.b = append(w.b, ']')
}

func (w *docWriter) int(k string, v int64) {
	w.key(k)
	w.b = strconv.AppendInt(w.b, v, 10)
}

func (w *docWriter) intp(k string, v *int64) {
	if v != nil {
		w.int(k, *v)
	}
}

func (w *docWriter) obj(k string, v map[string]any) {
	if v != nil {
		w.key(k)
		w.value(v)
	}
}

func (w *docWriter) begin(k string) {
	w.key(k)
	w.b = append(w.b, '{')
	w.comma = false
}

func (w *docWriter) end() {
	w.b = append(w.b, '}')
	w.comma = true
}

// encodeEvent appends the event's document to dst. canonicalJSON is the
// event's canonical content (what the hash covers).
func encodeEvent(dst []byte, e *auditevent.Event, hash, stream string, seq int64, canonicalJSON []byte, ingested string) ([]byte, error) {
	w := docWriter{b: append(dst, '{')}
	w.str("@timestamp", formatTime(e.Time))
	w.str("message", e.Body)
	if e.Severity != "" {
		w.begin("log")
		w.str("level", e.Severity)
		w.end()
	}
	w.begin("event")
	w.str("id", e.ID)
	w.str("action", e.Name)
	class := ecsClassOf(e.Name)
	w.str("kind", class.kind)
	w.strs("category", []string{class.category})
	w.strs("type", []string{eventType(e, class)})
	w.str("outcome", outcome(e))
	w.int("sequence", seq)
	w.str("hash", hash)
	w.str("ingested", ingested)
	w.end()
	if a := e.Actor; a.ID != "" || a.Name != "" || len(a.Roles) > 0 {
		w.begin("user")
		w.str("id", a.ID)
		w.str("name", a.Name)
		w.strs("roles", a.Roles)
		w.end()
	}
	if e.TraceID != "" {
		w.begin("trace")
		w.str("id", e.TraceID)
		w.end()
	}
	if e.SpanID != "" {
		w.begin("span")
		w.str("id", e.SpanID)
		w.end()
	}
	if e.ErrorType != "" || e.ErrorMessage != "" || e.ErrorStacktrace != "" {
		w.begin("error")
		w.str("type", e.ErrorType)
		w.str("message", e.ErrorMessage)
		w.str("stack_trace", e.ErrorStacktrace)
		w.end()
	}
	// Attributes outside the model, kept whole in a flattened field.
	if len(e.Extra) > 0 {
		w.obj("labels", e.Extra)
	}
	w.begin("batchaudit")
	w.str("stream", stream)
	w.str("category", auditevent.Category(e.Name))
	w.key("canonical")
	w.b = appendJSONString(w.b, canonicalJSON)
	if e.BatchID != "" || e.ParentBatchID != "" || e.BatchState != "" || e.BatchResult != "" || e.Counters != nil ||
		e.RunType != "" || e.LogicalDate != "" || e.BytesRead != nil || e.BytesWritten != nil {
		w.begin("batch")
		w.str("id", e.BatchID)
		w.str("parent_id", e.ParentBatchID)
		w.str("state", e.BatchState)
		w.str("result", e.BatchResult)
		w.str("run_type", e.RunType)
		w.str("logical_date", e.LogicalDate)
		if c := e.Counters; c != nil {
			w.begin("records")
			w.int("read", c.Read)
			w.int("written", c.Written)
			w.int("skipped", c.Skipped)
			w.int("errored", c.Errored)
			w.end()
		}
		if e.BytesRead != nil || e.BytesWritten != nil {
			w.begin("bytes")
			w.intp("read", e.BytesRead)
			w.intp("written", e.BytesWritten)
			w.end()
		}
		w.end()
	}
	if e.JobName != "" || e.JobNamespace != "" || e.JobVersion != "" || e.JobConfigHash != "" || e.JobConfig != nil {
		w.begin("job")
		w.str("name", e.JobName)
		w.str("namespace", e.JobNamespace)
		w.str("version", e.JobVersion)
		w.str("config_hash", e.JobConfigHash)
		w.obj("config", e.JobConfig)
		w.end()
	}
	if e.AuthPrincipal != "" {
		w.begin("auth")
		w.str("principal", e.AuthPrincipal)
		w.end()
	}
	if e.Actor.Type != "" {
		w.begin("actor")
		w.str("type", e.Actor.Type)
		w.end()
	}
	w.dataset("source", e.Source)
	w.dataset("target", e.Target)
	if e.RecordID != "" || len(e.KeyFields) > 0 || e.RecordHash != "" || e.HashAlgorithm != "" || e.PreviousHash != "" ||
		e.RecordData != nil || e.SkipReason != "" || e.Partition != "" || e.SenderHash != "" || e.HashCheck != "" {
		w.begin("record")
		w.str("id", e.RecordID)
		w.strs("key_fields", e.KeyFields)
		w.str("hash", e.RecordHash)
		w.str("hash_algorithm", e.HashAlgorithm)
		w.str("sender_hash", e.SenderHash)
		w.str("hash_check", e.HashCheck)
		w.str("previous_hash", e.PreviousHash)
		w.obj("data", e.RecordData)
		w.str("skip_reason", e.SkipReason)
		w.str("partition", e.Partition)
		w.end()
	}
	if e.ChangeType != "" || len(e.ChangedFields) > 0 || e.OldValue != nil || e.NewValue != nil {
		w.begin("change")
		w.str("type", e.ChangeType)
		w.strs("fields", e.ChangedFields)
		w.obj("old_value", e.OldValue)
		w.obj("new_value", e.NewValue)
		w.end()
	}
	if e.LineageID != "" || len(e.InputRecordIDs) > 0 || e.InputHash != "" || e.LineageChain != nil ||
		len(e.InputDatasets) > 0 || len(e.OutputDatasets) > 0 || e.ColumnLineage != nil || e.RecordCount != nil {
		w.begin("lineage")
		w.str("id", e.LineageID)
		w.strs("input_record_ids", e.InputRecordIDs)
		w.str("input_hash", e.InputHash)
		w.obj("chain", e.LineageChain)
		w.strs("inputs", e.InputDatasets)
		w.strs("outputs", e.OutputDatasets)
		w.obj("columns", e.ColumnLineage)
		w.intp("record_count", e.RecordCount)
		w.end()
	}
	if t := e.Transform; t.Name != "" || t.Sequence != 0 || t.Type != "" || t.Subtype != "" || t.Params != nil {
		w.begin("transform")
		w.str("name", t.Name)
		if t.Sequence != 0 {
			w.int("sequence", t.Sequence)
		}
		w.str("type", t.Type)
		w.str("subtype", t.Subtype)
		w.obj("params", t.Params)
		w.end()
	}
	if e.CheckpointID != "" || e.CheckpointPosition != "" || e.CheckpointRecords != nil {
		w.begin("checkpoint")
		w.str("id", e.CheckpointID)
		w.str("position", e.CheckpointPosition)
		w.intp("records_processed", e.CheckpointRecords)
		w.end()
	}
	if e.ValidationRule != "" || e.ValidationSeverity != "" || e.ValidationColumn != "" || e.ValidationExpected != nil || e.ValidationActual != nil {
		w.begin("validation")
		w.str("rule", e.ValidationRule)
		w.str("severity", e.ValidationSeverity)
		w.str("column", e.ValidationColumn)
		// Any JSON value: indexed as its JSON text, so one mapping fits all.
		w.str("expected", jsonText(e.ValidationExpected))
		w.str("actual", jsonText(e.ValidationActual))
		w.end()
	}
	if e.FindingType != "" || e.FindingSeverity != "" || len(e.FindingRecords) > 0 || e.FindingMessage != "" {
		w.begin("finding")
		w.str("type", e.FindingType)
		w.str("severity", e.FindingSeverity)
		w.strs("record_ids", e.FindingRecords)
		w.str("message", e.FindingMessage)
		w.end()
	}
	if len(e.Frameworks) > 0 {
		w.begin("compliance")
		w.strs("frameworks", e.Frameworks)
		w.end()
	}
	if len(e.Classification) > 0 {
		w.begin("data")
		w.strs("classification", e.Classification)
		w.end()
	}
	w.str("original_format", e.OriginalFormat)
	w.str("derived_by", e.DerivedBy)
	w.end()
	w.b = append(w.b, '}')
	if w.err != nil {
		return dst, fmt.Errorf("encode event %s: %w", e.ID, w.err)
	}
	return w.b, nil
}

// dataset writes namespace, name and namespace/name (what
// EventQuery.Dataset matches).
func (w *docWriter) dataset(k string, d auditevent.Dataset) {
	if d.IsZero() {
		return
	}
	w.begin(k)
	w.str("namespace", d.Namespace)
	w.str("name", d.Name)
	w.str("dataset", d.String())
	w.end()
}

// appendJSONString appends canonical JSON as a JSON string. Canonical JSON
// is valid UTF-8 and escapes every control character, so only quotes and
// backslashes need escaping.
func appendJSONString(dst, doc []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i, c := range doc {
		if c == '"' || c == '\\' {
			dst = append(dst, doc[start:i]...)
			dst = append(dst, '\\', c)
			start = i + 1
		}
	}
	dst = append(dst, doc[start:]...)
	return append(dst, '"')
}

func jsonText(v any) string {
	if v == nil {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// ecsClass is the ECS categorisation of an event name: event.kind,
// event.category and the default event.type, each one of the values ECS
// allows (docs/storage.md lists them), so that Kibana's apps and ECS-based
// searches read them as ECS defines them. batchaudit's own grouping
// (lifecycle, record, ...) is batchaudit.category.
type ecsClass struct{ kind, category, typ string }

// A run is a process (its lifecycle: start, end); records, their checks and
// their lineage are data storage and retrieval ("database" in ECS, which
// is not limited to database systems). A finding is a notable event raised
// by a detection outside the Elastic Stack: ECS kind "alert".
var ecsClasses = map[string]ecsClass{
	auditevent.BatchStart:         {"event", "process", "start"},
	auditevent.BatchProgress:      {"event", "process", "info"},
	auditevent.BatchEnd:           {"event", "process", "end"},
	auditevent.Checkpoint:         {"event", "process", "info"},
	auditevent.OpenLineageJob:     {"event", "process", "info"},
	auditevent.RecordRead:         {"event", "database", "access"},
	auditevent.RecordTransform:    {"event", "database", "change"},
	auditevent.RecordWrite:        {"event", "database", "change"},
	auditevent.RecordSkip:         {"event", "database", "info"},
	auditevent.RecordError:        {"event", "database", "error"},
	auditevent.RecordDelete:       {"event", "database", "deletion"},
	auditevent.ValidationPass:     {"event", "database", "info"},
	auditevent.ValidationFail:     {"event", "database", "info"},
	auditevent.LineageRecord:      {"event", "database", "info"},
	auditevent.LineageDataset:     {"event", "database", "info"},
	auditevent.OpenLineageDataset: {"event", "database", "info"},
	auditevent.Finding:            {"alert", "database", "info"},
	auditevent.RetentionPrune:     {"event", "database", "deletion"},
}

// ecsClassOf returns the class of a canonical event name; only valid events
// are stored, so an unknown name does not occur (it would be "info").
func ecsClassOf(name string) ecsClass {
	if c, ok := ecsClasses[name]; ok {
		return c
	}
	return ecsClass{"event", "database", "info"}
}

// eventType is ECS event.type: for writes and transforms the change type
// decides (creation, change, deletion; a write that changed nothing is
// "info", not "change"), for the rest the class's default.
func eventType(e *auditevent.Event, class ecsClass) string {
	if e.Name == auditevent.RecordWrite || e.Name == auditevent.RecordTransform {
		switch e.ChangeType {
		case auditevent.ChangeInsert:
			return "creation"
		case auditevent.ChangeDelete:
			return "deletion"
		case auditevent.ChangeNoChange:
			return "info"
		}
	}
	return class.typ
}

// outcome is ECS event.outcome: failure for errors, failed validations and
// unsuccessful runs.
func outcome(e *auditevent.Event) string {
	switch e.Name {
	case auditevent.RecordError, auditevent.ValidationFail:
		return "failure"
	case auditevent.BatchEnd:
		if e.BatchResult == auditevent.ResultSuccess {
			return "success"
		}
		if e.BatchResult == "" {
			return "unknown"
		}
		return "failure"
	case auditevent.Finding:
		return "unknown"
	}
	return "success"
}

// deadLetterDoc is one dead letter: ECS event.kind "pipeline_error" (the
// event could not be kept as it came). Its _id is derived from (stream, event
// id, document hash), so the same dead letter is kept once.
type deadLetterDoc struct {
	Timestamp string        `json:"@timestamp"`
	Event     deadEventMeta `json:"event"`
	Error     errorDoc      `json:"error"`
	Dead      deadMeta      `json:"batchaudit"`
}

type deadEventMeta struct {
	ID       string `json:"id"`
	Action   string `json:"action,omitempty"`
	Kind     string `json:"kind"`
	Sequence int64  `json:"sequence"`
	Hash     string `json:"hash"`
	Ingested string `json:"ingested"`
}

// deadKind is the entry kind of a dead-letters document: gap, or
// dead_letter (also for documents written before entry_kind).
func deadKind(entryKind string) merkle.Kind {
	if entryKind == string(merkle.KindGap) {
		return merkle.KindGap
	}
	return merkle.KindDeadLetter
}

type deadMeta struct {
	Stream string `json:"stream"`
	// EntryKind is dead_letter, or gap for a number that holds no event.
	EntryKind string `json:"entry_kind"`
	// DocHash is the SHA-256 of Document: what the Merkle leaf binds.
	DocHash string `json:"doc_hash"`
	// Conflict marks integrity alarms (same id, different content).
	Conflict bool   `json:"conflict"`
	Reason   string `json:"reason"`
	Document string `json:"document"`
	// ExistingHash is what the events index holds for a conflict.
	ExistingHash string `json:"existing_hash,omitempty"`
	// Batch is the event's batch id as received, so a run's dead letters
	// can be searched with the run (e.g. Kibana's Run detail dashboard).
	Batch *deadBatch `json:"batch,omitempty"`
}

type deadBatch struct {
	ID string `json:"id"`
}

// deadLetterID identifies a dead letter (or gap) by stream, event id and
// the hash of its document, so the same one is kept once.
func deadLetterID(stream string, k store.Key) string {
	h := sha256.New()
	h.Write([]byte(stream))
	h.Write([]byte{0})
	h.Write([]byte(k.ID))
	h.Write([]byte{0})
	h.Write([]byte(k.DocHash))
	return hex.EncodeToString(h.Sum(nil))
}

func encodeDeadLetter(dst []byte, e *store.Entry, stream, ingested string) ([]byte, error) {
	ts := ingested
	d := deadLetterDoc{
		Event: deadEventMeta{Kind: "pipeline_error", Sequence: e.Sequence, Hash: e.EventHash, Ingested: ingested},
		Error: errorDoc{Type: string(e.Kind), Message: e.Reason},
		Dead: deadMeta{Stream: stream, EntryKind: string(e.Kind), DocHash: e.Hash, Conflict: e.Conflict, Reason: e.Reason,
			Document: string(e.Document), ExistingHash: e.ExistingHash},
	}
	if ev := e.Event; ev != nil {
		if t := formatTime(ev.Time); t != "" {
			ts = t
		}
		d.Event.ID, d.Event.Action = ev.ID, ev.Name
		if ev.BatchID != "" {
			d.Dead.Batch = &deadBatch{ID: ev.BatchID}
		}
		if e.Conflict {
			d.Error.Type = "conflict"
		}
	}
	d.Timestamp = ts
	out, err := json.Marshal(&d)
	if err != nil {
		return dst, fmt.Errorf("encode dead letter %d: %w", e.Sequence, err)
	}
	return append(dst, out...), nil
}

type errorDoc struct {
	Type    string `json:"type,omitempty"`
	Message string `json:"message,omitempty"`
}
