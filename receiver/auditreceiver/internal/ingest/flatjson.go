package ingest

import (
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/batchaudit/batchaudit/auditevent"
)

// JSONEvents parses a plain JSON audit request: one event object, an array of
// them, or NDJSON. See the README for the accepted shape.
func JSONEvents(body []byte, opt Options) (*Result, error) {
	if res, ok := jsonArrayEvents(body, opt); ok {
		return res, nil
	}
	return jsonItemEvents(body, opt)
}

// jsonItemEvents is the general path: split the body into items, then parse
// each.
func jsonItemEvents(body []byte, opt Options) (*Result, error) {
	items, err := splitItems(body, opt)
	if err != nil {
		return nil, err
	}
	sink := newEventSink(FormatJSON, opt.ScopeName)
	sink.res.Items = len(items)
	keys, vals := internTables(len(items))
	var members []kv
	f := flatBuilder{}
	for i, raw := range items {
		members, err = parseMembers(raw, keys, vals, members)
		if err != nil {
			sink.reject(i, "item", "malformed JSON: "+err.Error())
			continue
		}
		f.add(sink, i, members)
	}
	return sink.res, nil
}

// internTables sizes the request's intern tables once: growing them costs
// more than they save.
func internTables(items int) (map[string]string, map[string]any) {
	size := min(8*items, maxInterned)
	return make(map[string]string, min(size, 128)), make(map[string]any, size)
}

// jsonArrayEvents is the common case in one pass: a well-formed array of
// objects within the limits, parsed item by item without splitting the array
// first. It declines (ok false) at the first thing it does not expect, and
// JSONEvents then takes the general path, which words the errors.
func jsonArrayEvents(body []byte, opt Options) (res *Result, ok bool) {
	if opt.NDJSON {
		return nil, false
	}
	sink := newEventSink(FormatJSON, opt.ScopeName)
	keys, vals := internTables(min(len(body)/64+1, maxInterned))
	var members []kv
	f := flatBuilder{}
	err := arrayItems(body, opt.MaxEvents, func(r *reader, n int) error {
		if r.i >= len(body) || body[r.i] != '{' {
			return errDeclined
		}
		var err error
		if members, r.i, err = parseObjectAt(body, r.i, keys, vals, members); err != nil {
			return err
		}
		f.add(sink, n, members)
		sink.res.Items++
		return nil
	})
	// An empty array is rare: the general path answers it.
	return sink.res, err == nil && sink.res.Items > 0
}

// flatAliases maps the field names common in hand-written audit loggers to
// canonical attribute keys. Canonical keys themselves are always accepted.
var flatAliases = map[string]string{
	"event_id":            auditevent.AttrEventID,
	"id":                  auditevent.AttrEventID,
	"batch_id":            auditevent.AttrBatchID,
	"run_id":              auditevent.AttrBatchID,
	"parent_batch_id":     auditevent.AttrParentBatchID,
	"parent_run_id":       auditevent.AttrParentBatchID,
	"job_name":            auditevent.AttrJobName,
	"job":                 auditevent.AttrJobName,
	"job_namespace":       auditevent.AttrJobNamespace,
	"record_id":           auditevent.AttrRecordID,
	"record_hash":         auditevent.AttrRecordHash,
	"hash_algorithm":      auditevent.AttrHashAlgorithm,
	"previous_hash":       auditevent.AttrPreviousHash,
	"record_data":         auditevent.AttrRecordData,
	"record":              auditevent.AttrRecordData,
	"key_fields":          auditevent.AttrRecordKeyFields,
	"partition":           auditevent.AttrPartition,
	"skip_reason":         auditevent.AttrSkipReason,
	"old_value":           auditevent.AttrOldValue,
	"new_value":           auditevent.AttrNewValue,
	"before":              auditevent.AttrOldValue,
	"after":               auditevent.AttrNewValue,
	"changed_fields":      auditevent.AttrChangedFields,
	"lineage_id":          auditevent.AttrLineageID,
	"input_record_ids":    auditevent.AttrInputRecordIDs,
	"transform_name":      auditevent.AttrTransformName,
	"checkpoint_id":       auditevent.AttrCheckpointID,
	"checkpoint_position": auditevent.AttrCheckpointPosition,
	"records_processed":   auditevent.AttrCheckpointRecords,
	"validation_rule":     auditevent.AttrValidationRule,
	"rule":                auditevent.AttrValidationRule,
	"column":              auditevent.AttrValidationColumn,
	"expected":            auditevent.AttrValidationExpected,
	"actual":              auditevent.AttrValidationActual,
	"records_read":        auditevent.AttrRecordsRead,
	"records_written":     auditevent.AttrRecordsWrite,
	"records_skipped":     auditevent.AttrRecordsSkip,
	"records_errored":     auditevent.AttrRecordsError,
	"error_type":          auditevent.AttrErrorType,
	"error_message":       auditevent.AttrErrorMessage,
	"error":               auditevent.AttrErrorMessage,
	"error_stack":         auditevent.AttrErrorStacktrace,
	"stacktrace":          auditevent.AttrErrorStacktrace,
	"frameworks":          auditevent.AttrFrameworks,
	"classification":      auditevent.AttrClassification,
	"user_id":             auditevent.AttrUserID,
	"user_name":           auditevent.AttrUserName,
	"roles":               auditevent.AttrUserRoles,
	"actor_type":          auditevent.AttrActorType,
	"inputs":              auditevent.AttrInputDatasets,
	"outputs":             auditevent.AttrOutputDatasets,
}

// EventFromFlat maps one flat JSON object onto an event. The problems it
// returns are the ones only the flat shape can detect (bad timestamps, unknown
// event types); Validate reports the rest.
func EventFromFlat(m map[string]any) (auditevent.Event, []auditevent.FieldError) {
	var f flatBuilder
	f.reset(new(auditevent.Event))
	for _, k := range sortedKeys(m) {
		f.member(k, m[k])
	}
	probs := f.finish()
	return *f.ev, probs
}

// flatBuilder maps the members of a flat JSON object one by one, so
// JSONEvents can feed it straight from the reader without building the
// top-level map.
type flatBuilder struct {
	ev                           *auditevent.Event
	probs                        []auditevent.FieldError
	impliedResult, impliedChange string
}

// reset starts a new object that fills ev.
func (f *flatBuilder) reset(ev *auditevent.Event) {
	*f = flatBuilder{ev: ev}
}

func (f *flatBuilder) bad(field, format string, args ...any) {
	f.probs = append(f.probs, auditevent.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
}

// member maps one top-level member.
func (f *flatBuilder) member(k string, v any) {
	switch k {
	case "event_name", "event_type", "type":
		s, ok := v.(string)
		if !ok {
			f.bad(k, "must be a string, got %s", jsonKind(v))
			return
		}
		name, res, change, known := eventName(s)
		if !known {
			f.bad(k, "unknown event type %q (use a batchaudit.* event name or its short form, e.g. record_write, batch_start, validation_pass)", s)
		}
		f.ev.Name, f.impliedResult, f.impliedChange = name, res, change
	case "timestamp", "time", "event_time", "@timestamp":
		t, err := parseTime(v)
		if err != nil {
			f.bad(k, "%s", err.Error())
			return
		}
		f.ev.Time = t
	case "trace_id":
		f.ev.TraceID = hexID(v, 16, k, f.bad)
	case "span_id":
		f.ev.SpanID = hexID(v, 8, k, f.bad)
	case "severity", "level":
		if s, ok := v.(string); ok {
			f.ev.Severity = s
		} else {
			f.bad(k, "must be a string, got %s", jsonKind(v))
		}
	case "body", "message":
		if s, ok := v.(string); ok {
			f.ev.Body = s
		} else {
			f.bad(k, "must be a string, got %s", jsonKind(v))
		}
	case "source", "target":
		d, ok := toDataset(v)
		if !ok {
			f.bad(k, `must be "namespace/name" text or an object {"namespace": ..., "name": ...}, got %s`, jsonKind(v))
			return
		}
		if k == "source" {
			f.ev.Source = d
		} else {
			f.ev.Target = d
		}
	case "actor", "user":
		switch a := v.(type) {
		case string:
			f.ev.Actor.ID = a
		case map[string]any:
			for _, ak := range sortedKeys(a) {
				av := a[ak]
				if key, ok := actorKeys[ak]; ok {
					f.ev.Set(key, av)
				} else {
					f.bad(k+"."+ak, "unknown actor field (use id, name, type, roles)")
				}
			}
		default:
			f.bad(k, "must be a string (the user id) or an object {id, name, type, roles}, got %s", jsonKind(v))
		}
	case "change_type", "operation", "op":
		s, ok := v.(string)
		if !ok {
			f.bad(k, "must be a string, got %s", jsonKind(v))
			return
		}
		f.ev.ChangeType = changeType(s)
	case "result", "status":
		s, ok := v.(string)
		if !ok {
			f.bad(k, "must be a string, got %s", jsonKind(v))
			return
		}
		f.ev.BatchResult = batchResult(s)
	case "counters":
		c, ok := v.(map[string]any)
		if !ok {
			f.bad(k, "must be an object {read, written, skipped, errored}, got %s", jsonKind(v))
			return
		}
		for _, ck := range sortedKeys(c) {
			cv := c[ck]
			if key, ok := counterKeys[ck]; ok {
				f.ev.Set(key, cv)
			} else {
				f.bad(k+"."+ck, "unknown counter (use read, written, skipped, errored)")
			}
		}
	case "attributes", "metadata", "labels":
		attrs, ok := v.(map[string]any)
		if !ok {
			f.bad(k, "must be an object, got %s", jsonKind(v))
			return
		}
		for ak, av := range attrs {
			f.ev.Set(ak, av) // reports nothing: order does not matter
		}
	default:
		if canon, ok := flatAliases[k]; ok {
			k = canon
		}
		f.ev.Set(k, v)
	}
}

// add maps one object's members onto the sink's next event and adds it as
// item idx.
func (f *flatBuilder) add(sink *eventSink, idx int, members []kv) {
	f.reset(sink.next())
	for _, m := range members {
		f.member(m.k, m.v)
	}
	clear(members) // drop references to this item's values
	sink.add(idx, f.ev, "", f.finish())
}

// finish applies what the event type implied and returns the problems found.
func (f *flatBuilder) finish() []auditevent.FieldError {
	if f.ev.BatchResult == "" && f.impliedResult != "" {
		f.ev.BatchResult = f.impliedResult
	}
	if f.ev.ChangeType == "" && f.impliedChange != "" {
		f.ev.ChangeType = f.impliedChange
	}
	return f.probs
}

// sortedKeys gives the members of a decoded object in key order, so that the
// problems reported for it come in the same order every time.
func sortedKeys(m map[string]any) []string {
	return slices.Sorted(maps.Keys(m))
}

var actorKeys = map[string]string{
	"id": auditevent.AttrUserID, "name": auditevent.AttrUserName,
	"type": auditevent.AttrActorType, "roles": auditevent.AttrUserRoles,
}

var counterKeys = map[string]string{
	"read": auditevent.AttrRecordsRead, "written": auditevent.AttrRecordsWrite,
	"skipped": auditevent.AttrRecordsSkip, "errored": auditevent.AttrRecordsError,
}

// eventSynonyms are event types seen in hand-written loggers that do not
// follow the name_verb pattern; some imply a result or change type.
var eventSynonyms = map[string][3]string{
	"batch_begin":        {auditevent.BatchStart},
	"batch_started":      {auditevent.BatchStart},
	"batch_complete":     {auditevent.BatchEnd, auditevent.ResultSuccess},
	"batch_completed":    {auditevent.BatchEnd, auditevent.ResultSuccess},
	"batch_finished":     {auditevent.BatchEnd},
	"batch_success":      {auditevent.BatchEnd, auditevent.ResultSuccess},
	"batch_failed":       {auditevent.BatchEnd, auditevent.ResultFailure},
	"batch_failure":      {auditevent.BatchEnd, auditevent.ResultFailure},
	"batch_cancelled":    {auditevent.BatchEnd, auditevent.ResultCancellation},
	"record_insert":      {auditevent.RecordWrite, "", auditevent.ChangeInsert},
	"record_update":      {auditevent.RecordWrite, "", auditevent.ChangeUpdate},
	"record_written":     {auditevent.RecordWrite},
	"record_skipped":     {auditevent.RecordSkip},
	"record_failed":      {auditevent.RecordError},
	"record_deleted":     {auditevent.RecordDelete},
	"validation_passed":  {auditevent.ValidationPass},
	"validation_failed":  {auditevent.ValidationFail},
	"validation_failure": {auditevent.ValidationFail},
}

// eventName resolves a canonical name, a short form (record_write,
// record.write) or a synonym.
func eventName(s string) (name, result, change string, known bool) {
	if auditevent.Known(s) {
		return s, "", "", true
	}
	l := strings.ToLower(strings.TrimSpace(s))
	if syn, ok := eventSynonyms[l]; ok {
		return syn[0], syn[1], syn[2], true
	}
	full := "batchaudit." + strings.ReplaceAll(l, "_", ".")
	if auditevent.Known(full) {
		return full, "", "", true
	}
	if auditevent.Known(l) {
		return l, "", "", true
	}
	return s, "", "", false
}

func changeType(s string) string {
	switch l := strings.ToLower(strings.TrimSpace(s)); l {
	case "c", "create", "created", "insert", "inserted":
		return auditevent.ChangeInsert
	case "u", "updated", "update":
		return auditevent.ChangeUpdate
	case "d", "deleted", "delete":
		return auditevent.ChangeDelete
	case "unchanged", "none", "nochange", "no-change", "no_change":
		return auditevent.ChangeNoChange
	default:
		return l
	}
}

func batchResult(s string) string {
	switch l := strings.ToLower(strings.TrimSpace(s)); l {
	case "ok", "succeeded", "successful", "completed", "complete", "done":
		return auditevent.ResultSuccess
	case "failed", "fail":
		return auditevent.ResultFailure
	case "cancelled", "canceled", "aborted", "abort", "cancel":
		return auditevent.ResultCancellation
	case "skipped":
		return auditevent.ResultSkip
	case "timed_out", "timedout":
		return auditevent.ResultTimeout
	default:
		return l
	}
}

// toDataset accepts "scheme://authority/name", a bare name, or an object.
func toDataset(v any) (auditevent.Dataset, bool) {
	switch t := v.(type) {
	case string:
		return splitDataset(t), true
	case map[string]any:
		ns, ok1 := t["namespace"].(string)
		name, ok2 := t["name"].(string)
		if (!ok1 && t["namespace"] != nil) || (!ok2 && t["name"] != nil) {
			return auditevent.Dataset{}, false
		}
		return auditevent.Dataset{Namespace: ns, Name: name}, true
	}
	return auditevent.Dataset{}, false
}

// splitDataset follows OpenLineage naming: the namespace is scheme://authority
// and the name the rest of the path, e.g. postgres://db:5432/sales.orders.
func splitDataset(s string) auditevent.Dataset {
	i := strings.Index(s, "://")
	if i < 0 {
		return auditevent.Dataset{Name: s}
	}
	rest := s[i+3:]
	j := strings.IndexByte(rest, '/')
	if j < 0 {
		return auditevent.Dataset{Namespace: s}
	}
	return auditevent.Dataset{Namespace: s[:i+3+j], Name: rest[j+1:]}
}

func hexID(v any, n int, field string, bad func(string, string, ...any)) string {
	s, ok := v.(string)
	if !ok {
		bad(field, "must be a hex string, got %s", jsonKind(v))
		return ""
	}
	s = strings.ToLower(s)
	if b, err := hex.DecodeString(s); err != nil || len(b) != n {
		bad(field, "must be %d hex characters", 2*n)
		return ""
	}
	return s
}
