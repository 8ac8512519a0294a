package ingest

import (
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

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
	sink := newEventSink(FormatJSON, opt)
	sink.res.Items = len(items)
	keys, vals := internTables(len(items))
	var members []kv
	f := flatBuilder{}
	for i, raw := range items {
		if p := textProblem(raw); p != "" {
			sink.reject(i, "item", p)
			continue
		}
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
	sink := newEventSink(FormatJSON, opt)
	keys, vals := internTables(min(len(body)/64+1, maxInterned))
	var members []kv
	f := flatBuilder{}
	err := arrayItems(body, opt.MaxEvents, func(r *reader, n int) error {
		if r.i >= len(body) || body[r.i] != '{' {
			return errDeclined
		}
		var err error
		start := r.i
		if members, r.i, err = parseObjectAt(body, r.i, keys, vals, members); err != nil {
			return err
		}
		if p := textProblem(body[start:r.i]); p != "" {
			sink.reject(n, "item", p)
		} else {
			f.add(sink, n, members)
		}
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
// top-level map. Members whose meaning depends on others (the event type,
// metadata objects, the fields of a workflow audit record) are kept until
// finish, when the whole object has been seen.
type flatBuilder struct {
	ev                           *auditevent.Event
	probs                        []auditevent.FieldError
	impliedResult, impliedChange string

	// typeKey/typeVal: the event_name, event_type or type member (the last
	// one wins, as before); named: an event_name or event_type was sent.
	typeKey string
	typeVal any
	named   bool
	// name and release: members of a ddeutil-workflow audit record.
	name, release any
	// meta: members of metadata / runs_metadata objects, mapped in finish.
	meta        []kv
	topCounters bool
}

// reset starts a new object that fills ev.
func (f *flatBuilder) reset(ev *auditevent.Event) {
	meta := f.meta[:0]
	*f = flatBuilder{ev: ev, meta: meta}
}

func (f *flatBuilder) bad(field, format string, args ...any) {
	f.probs = append(f.probs, auditevent.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
}

// member maps one top-level member. A null member is absent, whatever the
// field: loggers that serialize every field send null for the unset ones.
func (f *flatBuilder) member(k string, v any) {
	if v == nil {
		return
	}
	switch k {
	case "event_name", "event_type", "type":
		f.typeKey, f.typeVal = k, v
		if k != "type" {
			f.named = true
		}
	case "name":
		f.name = v
	case "release":
		f.release = v
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
				if av == nil {
					continue
				}
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
			if cv == nil {
				continue
			}
			if key, ok := counterKeys[ck]; ok {
				f.ev.Set(key, cv)
			} else {
				f.bad(k+"."+ck, "unknown counter (use read, written, skipped, errored)")
			}
		}
	case "attributes", "labels":
		attrs, ok := v.(map[string]any)
		if !ok {
			f.bad(k, "must be an object, got %s", jsonKind(v))
			return
		}
		for ak, av := range attrs {
			if av != nil {
				f.ev.Set(ak, av) // reports nothing: order does not matter
			}
		}
	case "metadata", "runs_metadata":
		attrs, ok := v.(map[string]any)
		if !ok {
			f.bad(k, "must be an object, got %s", jsonKind(v))
			return
		}
		for _, ak := range sortedKeys(attrs) {
			if av := attrs[ak]; av != nil {
				f.meta = append(f.meta, kv{ak, av})
			}
		}
	case "config", "params", "parameters":
		f.config(k, v)
	case "run_type":
		f.runType(k, v)
	case "logical_date", "execution_date", "data_interval_start":
		f.logicalDate(k, v)
	default:
		if canon, ok := flatAliases[k]; ok {
			k = canon
		}
		f.ev.Set(k, v)
	}
}

// config takes a job configuration object; anything else is kept under its
// own name.
func (f *flatBuilder) config(k string, v any) {
	if m, ok := v.(map[string]any); ok && f.ev.JobConfig == nil {
		f.ev.JobConfig = m
		return
	}
	f.ev.SetExtra(k, v)
}

func (f *flatBuilder) runType(k string, v any) {
	if s, ok := v.(string); ok && f.ev.RunType == "" {
		f.ev.RunType = runType(s)
		return
	}
	f.ev.SetExtra(k, v)
}

// logicalDate keeps a date as sent, or as RFC 3339 UTC when it is a
// timestamp (text or epoch number), so runs compare by it.
func (f *flatBuilder) logicalDate(k string, v any) {
	if f.ev.LogicalDate == "" {
		if t, err := parseTime(v); err == nil {
			f.ev.LogicalDate = t.Format(time.RFC3339Nano)
			return
		}
		if s, ok := v.(string); ok && s != "" {
			f.ev.LogicalDate = s
			return
		}
	}
	f.ev.SetExtra(k, v)
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

// finish resolves what needed the whole object (event type, workflow audit
// records, metadata), applies what the event type implied and returns the
// problems found.
func (f *flatBuilder) finish() []auditevent.FieldError {
	if f.release != nil && !f.named && !isEventType(f.typeVal) {
		f.workflowRecord()
	} else {
		if f.typeVal != nil {
			f.eventType(f.typeKey, f.typeVal)
		}
		if f.name != nil {
			f.ev.Set("name", f.name)
		}
		if f.release != nil {
			f.ev.Set("release", f.release)
		}
	}
	f.topCounters = f.ev.Counters != nil
	for _, m := range f.meta {
		f.metaMember(m.k, m.v)
	}
	clear(f.meta)
	if f.ev.BatchResult == "" && f.impliedResult != "" {
		f.ev.BatchResult = f.impliedResult
	}
	if f.ev.ChangeType == "" && f.impliedChange != "" {
		f.ev.ChangeType = f.impliedChange
	}
	return f.probs
}

func (f *flatBuilder) eventType(k string, v any) {
	s, ok := v.(string)
	if !ok {
		f.bad(k, "must be a string, got %s", jsonKind(v))
		return
	}
	name, res, change, known := eventName(s)
	if !known {
		f.bad(k, "is not a known event type (use a batchaudit.* event name or its short form, e.g. record_write, batch_start, validation_pass)")
	}
	f.ev.Name, f.impliedResult, f.impliedChange = name, res, change
}

func isEventType(v any) bool {
	s, ok := v.(string)
	if !ok {
		return false
	}
	_, _, _, known := eventName(s)
	return known
}

// workflowRecord maps a ddeutil-workflow audit record (name, release, type,
// context, run_id, parent_run_id, runs_metadata), written once a workflow
// release has run, onto the batch end of that run.
func (f *flatBuilder) workflowRecord() {
	ev := f.ev
	ev.Name = auditevent.BatchEnd
	if s, ok := f.name.(string); ok {
		ev.JobName = s
	} else if f.name != nil {
		f.bad("name", "must be a string (the workflow name), got %s", jsonKind(f.name))
	}
	if s, ok := f.typeVal.(string); ok {
		ev.RunType = runType(s)
	} else if f.typeVal != nil {
		f.bad("type", "must be a string (the release type), got %s", jsonKind(f.typeVal))
	}
	t, err := parseTime(f.release)
	if err != nil {
		f.bad("release", "%s", err.Error())
	} else {
		ev.LogicalDate = t.Format(time.RFC3339Nano)
		if ev.Time.IsZero() {
			ev.Time = t // the record carries no other time
		}
	}
	ctx, _ := ev.Extra["context"].(map[string]any)
	if ctx == nil {
		if ev.BatchResult == "" {
			f.bad("context.status", "is required: the workflow's result (SUCCESS, FAILED, SKIP or CANCEL)")
		}
		return
	}
	rest := make(map[string]any, len(ctx))
	for k, v := range ctx {
		switch k {
		case "params":
			if m, ok := v.(map[string]any); ok && ev.JobConfig == nil {
				ev.JobConfig = m
				continue
			}
		case "status":
			if s, ok := v.(string); ok && ev.BatchResult == "" {
				ev.BatchResult = batchResult(s)
				continue
			}
		case "errors":
			if m, ok := v.(map[string]any); ok {
				if s, ok := firstString(m, "error_type", "name", "class"); ok && ev.ErrorType == "" {
					ev.ErrorType = s
				}
				if s, ok := firstString(m, "message", "error_message"); ok && ev.ErrorMessage == "" {
					ev.ErrorMessage = s
				}
			}
		}
		rest[k] = v
	}
	if ev.BatchResult == "" {
		ev.BatchResult = workflowResult(ctx)
	}
	if ev.BatchResult == "" {
		f.bad("context.status", "is required: the workflow's result (SUCCESS, FAILED, SKIP or CANCEL)")
	}
	if len(rest) > 0 {
		ev.Extra["context"] = rest
	} else {
		delete(ev.Extra, "context")
	}
}

// workflowResult derives a workflow's result from its context when it has
// no status: failed when it reports errors or a failed job, cancelled when a
// job was cancelled, successful when every job succeeded or was skipped.
func workflowResult(ctx map[string]any) string {
	if ctx["errors"] != nil {
		return auditevent.ResultFailure
	}
	jobs, _ := ctx["jobs"].(map[string]any)
	if len(jobs) == 0 {
		return ""
	}
	res := auditevent.ResultSuccess
	for _, j := range jobs {
		m, _ := j.(map[string]any)
		s, _ := m["status"].(string)
		switch batchResult(s) {
		case auditevent.ResultFailure:
			return auditevent.ResultFailure
		case auditevent.ResultCancellation:
			res = auditevent.ResultCancellation
		case auditevent.ResultSuccess, auditevent.ResultSkip:
		default:
			return ""
		}
	}
	return res
}

func firstString(m map[string]any, keys ...string) (string, bool) {
	for _, k := range keys {
		if s, ok := m[k].(string); ok && s != "" {
			return s, true
		}
	}
	return "", false
}

// metaMember maps one member of a metadata object. Well-known keys of
// hand-written loggers become model attributes when the event type gives
// them that meaning and the field is still empty; canonical keys are taken
// as they are; everything else (and any value that does not fit) is kept
// under its own name. Nothing here rejects an event.
func (f *flatBuilder) metaMember(k string, v any) {
	ev := f.ev
	if auditevent.IsAttribute(k) {
		ev.Set(k, v)
		return
	}
	run := ev.Name == auditevent.BatchStart || ev.Name == auditevent.BatchProgress || ev.Name == auditevent.BatchEnd
	switch {
	case k == "job_name" || k == "job":
		if setStr(&ev.JobName, v) {
			return
		}
	case k == "job_namespace":
		if setStr(&ev.JobNamespace, v) {
			return
		}
	case run && (k == "job_version" || k == "code_version" || k == "version" || k == "git_sha" || k == "git_commit"):
		if setStr(&ev.JobVersion, v) {
			return
		}
	case run && k == "config_hash":
		if setStr(&ev.JobConfigHash, v) {
			return
		}
	case run && (k == "config" || k == "params" || k == "parameters"):
		if m, ok := v.(map[string]any); ok && ev.JobConfig == nil {
			ev.JobConfig = m
			return
		}
	case run && k == "run_type":
		if s, ok := v.(string); ok && ev.RunType == "" {
			ev.RunType = runType(s)
			return
		}
	case run && (k == "logical_date" || k == "execution_date" || k == "data_interval_start"):
		if ev.LogicalDate == "" {
			f.logicalDate(k, v)
			return
		}
	case run && (k == "parent_run_id" || k == "parent_batch_id"):
		if setStr(&ev.ParentBatchID, v) {
			return
		}
	case ev.Name == auditevent.BatchEnd && (k == "status" || k == "result"):
		if s, ok := v.(string); ok && ev.BatchResult == "" {
			if r := batchResult(s); auditevent.ValidResult(r) {
				ev.BatchResult = r
				return
			}
		}
	case ev.Name == auditevent.BatchEnd && metaCounter[k] != "":
		// Counters sent at the top level win as a whole.
		if n, ok := v.(int64); ok && n >= 0 && !f.topCounters {
			ev.Set(metaCounter[k], n)
			return
		}
	case ev.Name == auditevent.RecordSkip && (k == "reason" || k == "skip_reason"):
		if setStr(&ev.SkipReason, v) {
			return
		}
	case ev.Name == auditevent.Checkpoint && (k == "checkpoint_id" || k == "id"):
		if setStr(&ev.CheckpointID, v) {
			return
		}
	case ev.Name == auditevent.Checkpoint && (k == "checkpoint_position" || k == "position" || k == "offset" || k == "last_record_id"):
		if setStr(&ev.CheckpointPosition, v) {
			return
		}
	case ev.Name == auditevent.Checkpoint && (k == "records_processed" || k == "processed"):
		if n, ok := v.(int64); ok && ev.CheckpointRecords == nil {
			ev.CheckpointRecords = &n
			return
		}
	case ev.Name == auditevent.RecordError && (k == "error_type" || k == "error_message" || k == "error" || k == "error_stack" || k == "stacktrace"):
		if setStr(errorField(ev, k), v) {
			return
		}
	}
	if _, taken := ev.Extra[k]; taken {
		k = "metadata." + k // a top-level member of the same name was kept already
	}
	ev.SetExtra(k, v)
}

// setStr fills an empty string field with a string (or number) value and
// reports whether it did.
func setStr(dst *string, v any) bool {
	if *dst != "" {
		return false
	}
	switch t := v.(type) {
	case string:
		*dst = t
	case int64:
		*dst = strconv.FormatInt(t, 10)
	default:
		return false
	}
	return *dst != ""
}

func errorField(ev *auditevent.Event, k string) *string {
	switch k {
	case "error_type":
		return &ev.ErrorType
	case "error_stack", "stacktrace":
		return &ev.ErrorStacktrace
	}
	return &ev.ErrorMessage
}

var metaCounter = map[string]string{
	"records_read": auditevent.AttrRecordsRead, "records_written": auditevent.AttrRecordsWrite,
	"records_skipped": auditevent.AttrRecordsSkip, "records_errored": auditevent.AttrRecordsError,
}

// runType maps the run types of schedulers and workflow tools onto normal,
// rerun, backfill and dry_run; other values are kept (lower case).
func runType(s string) string {
	switch l := strings.ToLower(strings.TrimSpace(s)); l {
	case "normal", "scheduled", "schedule", "manual", "triggered", "event", "asset_triggered":
		return auditevent.RunNormal
	case "rerun", "re-run", "retry", "force", "repair":
		return auditevent.RunRerun
	case "backfill", "catchup", "catch_up":
		return auditevent.RunBackfill
	case "dry_run", "dryrun", "dry-run":
		return auditevent.RunDryRun
	default:
		return l
	}
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
		return auditevent.ParseDataset(t), true
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
