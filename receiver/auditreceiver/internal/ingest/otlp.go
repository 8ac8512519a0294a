package ingest

import (
	"encoding/hex"
	"fmt"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/batchaudit/batchaudit/auditevent"
)

// OTLPLogs normalizes the log records of an OTLP request in place: every
// record is read as a canonical event (FromLogRecord), given a deterministic
// id when it has none, validated and rewritten (ToLogRecord); invalid records
// are removed and reported. Resource and scope are kept.
func OTLPLogs(ld plog.Logs, opt Options) (*Result, error) {
	n := ld.LogRecordCount()
	if opt.MaxEvents > 0 && n > opt.MaxEvents {
		return nil, tooMany(n, opt.MaxEvents)
	}
	res := &Result{Logs: ld, Items: n}
	idx := 0
	ev := new(auditevent.Event) // reused: ToLogRecord copies it out
	for i, rl := range ld.ResourceLogs().All() {
		resource := rl.Resource()
		for j, sl := range rl.ScopeLogs().All() {
			k := 0
			sl.LogRecords().RemoveIf(func(lr plog.LogRecord) bool {
				defer func() { idx++; k++ }()
				*ev = auditevent.FromLogRecord(lr, resource)
				if rej := finish(ev, FormatOTLP, "", opt.Principal, nil, opt.Limits, opt.Pseudonymize); rej != nil {
					rej.Index = idx
					rej.Path = fmt.Sprintf("resource_logs[%d].scope_logs[%d].log_records[%d]", i, j, k)
					res.Rejected = append(res.Rejected, *rej)
					return true
				}
				ev.ToLogRecord(lr)
				res.Accepted++
				res.IDs = append(res.IDs, ev.ID)
				return false
			})
		}
		rl.ScopeLogs().RemoveIf(func(sl plog.ScopeLogs) bool { return sl.LogRecords().Len() == 0 })
	}
	ld.ResourceLogs().RemoveIf(func(rl plog.ResourceLogs) bool { return rl.ScopeLogs().Len() == 0 })
	return res, nil
}

// Span conversion rules (see README, "Spans"):
//   - a batch-run span carries batchaudit.batch.id and batchaudit.job.name in
//     its own attributes; it becomes a batch start event (span start) and, once
//     ended, a batch end event (span end) with result from the span status and
//     counters from batchaudit.batch.records.*;
//   - span events named batchaudit.* become events of that name, with batch id
//     and job from the event, the span or the resource;
//   - trace and span ids are kept on every derived event.
const exceptionEvent = "exception"

// OTLPTraces converts the spans of an OTLP trace request to canonical events.
// Items are spans; a span is rejected when it carries no audit data or when
// none of its events is valid (the message names every problem).
func OTLPTraces(td ptrace.Traces, opt Options) (*Result, error) {
	spans := td.SpanCount()
	if opt.MaxEvents > 0 && spans > opt.MaxEvents {
		return nil, tooMany(spans, opt.MaxEvents)
	}
	res := &Result{Logs: plog.NewLogs(), Items: spans}
	idx := 0
	for i, rs := range td.ResourceSpans().All() {
		var rl plog.ResourceLogs
		haveRL := false
		for j, ss := range rs.ScopeSpans().All() {
			var sl plog.ScopeLogs
			haveSL := false
			// Output resource and scope are created on first use, so spans
			// without audit data leave nothing behind.
			out := func() plog.LogRecord {
				if !haveSL {
					if !haveRL {
						haveRL = true
						rl = res.Logs.ResourceLogs().AppendEmpty()
						rs.Resource().CopyTo(rl.Resource())
						rl.SetSchemaUrl(rs.SchemaUrl())
					}
					haveSL = true
					sl = rl.ScopeLogs().AppendEmpty()
					ss.Scope().CopyTo(sl.Scope())
					sl.SetSchemaUrl(ss.SchemaUrl())
				}
				return sl.LogRecords().AppendEmpty()
			}
			for k, span := range ss.Spans().All() {
				path := fmt.Sprintf("resource_spans[%d].scope_spans[%d].spans[%d]", i, j, k)
				convertSpan(span, rs.Resource(), idx, path, res, out, opt)
				idx++
			}
		}
	}
	return res, nil
}

func convertSpan(span ptrace.Span, resource pcommon.Resource, idx int, path string, res *Result, out func() plog.LogRecord, opt Options) {
	attrs := span.Attributes()
	// jobaudit marks its run spans: their audit events were already sent as
	// log records, so converting the span would record the run twice.
	if v, ok := attrs.Get(auditevent.AttrRunEvents); ok && v.Str() == auditevent.RunEventsAsLogs {
		return
	}
	_, hasBatch := attrs.Get(auditevent.AttrBatchID)
	_, hasJob := attrs.Get(auditevent.AttrJobName)
	var events []auditevent.Event
	if hasBatch && hasJob {
		events = append(events, runEvents(span, resource)...)
	}
	for _, se := range span.Events().All() {
		if !strings.HasPrefix(se.Name(), "batchaudit.") {
			continue
		}
		events = append(events, spanEvent(span, se, resource))
	}
	if len(events) == 0 {
		res.Rejected = append(res.Rejected, Rejection{Index: idx, Path: path, Problems: []auditevent.FieldError{{
			Field:  "span",
			Reason: "carries no audit data: a batch-run span needs batchaudit.batch.id and batchaudit.job.name attributes; record events are span events named batchaudit.*",
		}}})
		return
	}
	var probs []auditevent.FieldError
	accepted, overLimit := 0, false
	for e := range events {
		ev := &events[e]
		if rej := finish(ev, FormatOTLP, "", opt.Principal, nil, opt.Limits, opt.Pseudonymize); rej != nil {
			overLimit = overLimit || rej.OverLimit
			for _, p := range rej.Problems {
				probs = append(probs, auditevent.FieldError{Field: ev.Name + " " + p.Field, Reason: p.Reason})
			}
			continue
		}
		ev.ToLogRecord(out())
		res.Accepted++
		res.IDs = append(res.IDs, ev.ID)
		accepted++
	}
	if len(probs) > 0 {
		rej := Rejection{Index: idx, Path: path, Problems: probs, OverLimit: overLimit}
		if accepted > 0 {
			// The span itself counts as accepted; its invalid events are
			// still reported.
			rej.Path += fmt.Sprintf(" (%d of %d derived events rejected)", len(events)-accepted, len(events))
			rej.PartlyAccepted = true
		}
		res.Rejected = append(res.Rejected, rej)
	}
}

// spanLogRecord carries span data through auditevent.FromLogRecord so spans
// share the model's attribute mapping and resource fallback.
func spanLogRecord(span ptrace.Span, name string, ts pcommon.Timestamp, attrs pcommon.Map) plog.LogRecord {
	lr := plog.NewLogRecord()
	lr.SetEventName(name)
	lr.SetTimestamp(ts)
	lr.SetTraceID(span.TraceID())
	lr.SetSpanID(span.SpanID())
	attrs.CopyTo(lr.Attributes())
	return lr
}

func runEvents(span ptrace.Span, resource pcommon.Resource) []auditevent.Event {
	start := auditevent.FromLogRecord(spanLogRecord(span, auditevent.BatchStart, span.StartTimestamp(), span.Attributes()), resource)
	start.BatchState = "START"
	// Totals and the result belong to the end of the run only.
	start.Counters, start.BatchResult = nil, ""
	if span.EndTimestamp() == 0 {
		return []auditevent.Event{start}
	}
	end := auditevent.FromLogRecord(spanLogRecord(span, auditevent.BatchEnd, span.EndTimestamp(), span.Attributes()), resource)
	if end.BatchResult == "" {
		end.BatchResult = auditevent.ResultSuccess
		if span.Status().Code() == ptrace.StatusCodeError {
			end.BatchResult = auditevent.ResultFailure
		}
	}
	end.BatchState = "COMPLETE"
	if end.BatchResult != auditevent.ResultSuccess {
		end.BatchState = "FAIL"
	}
	// Exception span events (recorded by SDKs on failure) describe the error
	// better than the status message, which is the fallback.
	for _, se := range span.Events().All() {
		if se.Name() != exceptionEvent {
			continue
		}
		ea := se.Attributes()
		for _, f := range []struct {
			key string
			dst *string
		}{{auditevent.AttrErrorType, &end.ErrorType}, {auditevent.AttrErrorMessage, &end.ErrorMessage}, {auditevent.AttrErrorStacktrace, &end.ErrorStacktrace}} {
			if v, ok := ea.Get(f.key); ok && *f.dst == "" {
				*f.dst = v.AsString()
			}
		}
	}
	if span.Status().Code() == ptrace.StatusCodeError && end.ErrorMessage == "" {
		end.ErrorMessage = span.Status().Message()
	}
	return []auditevent.Event{start, end}
}

func spanEvent(span ptrace.Span, se ptrace.SpanEvent, resource pcommon.Resource) auditevent.Event {
	ev := auditevent.FromLogRecord(spanLogRecord(span, se.Name(), se.Timestamp(), se.Attributes()), resource)
	// The span's own batch and job identify events that do not repeat them.
	sa := span.Attributes()
	for _, k := range []struct {
		key string
		dst *string
	}{{auditevent.AttrBatchID, &ev.BatchID}, {auditevent.AttrJobName, &ev.JobName}, {auditevent.AttrJobNamespace, &ev.JobNamespace}} {
		if v, ok := sa.Get(k.key); ok && (*k.dst == "" || !attrSetOn(se.Attributes(), k.key)) {
			*k.dst = v.AsString()
		}
	}
	if ev.TraceID == "" && !span.TraceID().IsEmpty() {
		id := span.TraceID()
		ev.TraceID = hex.EncodeToString(id[:])
	}
	return ev
}

func attrSetOn(m pcommon.Map, k string) bool { _, ok := m.Get(k); return ok }
