package ingest

import (
	"fmt"
	"slices"
	"strings"

	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/canonical"
)

// Source formats, recorded in batchaudit.original.format and used as the
// first part of deterministic ids.
const (
	FormatOTLP        = "otlp"
	FormatJSON        = "json"
	FormatOpenLineage = "openlineage"
)

// Rejection explains why one item of a request was not accepted.
type Rejection struct {
	// Index is the item's position in the request (0-based): the array or
	// NDJSON position, or the log record / span number in OTLP order.
	Index int `json:"index"`
	// Path locates the item inside an OTLP request.
	Path string `json:"path,omitempty"`
	// PartlyAccepted is set for an OTLP span some of whose derived events
	// were accepted: the span is not counted as rejected.
	PartlyAccepted bool `json:"partly_accepted,omitempty"`
	// OverLimit is set when a size, count or depth limit rejected the item
	// (it is then counted as refused for reason "limit", not "invalid").
	OverLimit bool                    `json:"-"`
	EventID   string                  `json:"event_id,omitempty"`
	EventName string                  `json:"event_name,omitempty"`
	Problems  []auditevent.FieldError `json:"problems"`
}

// Partial reports whether some events of the item were accepted.
func (r Rejection) Partial() bool { return r.PartlyAccepted }

func (r Rejection) String() string {
	parts := make([]string, len(r.Problems))
	for i, p := range r.Problems {
		parts[i] = p.Field + ": " + p.Reason
	}
	where := fmt.Sprintf("item %d", r.Index)
	if r.Path != "" {
		where = r.Path
	}
	return where + ": " + strings.Join(parts, "; ")
}

// Result is the outcome of parsing one request.
type Result struct {
	// Logs holds the accepted events as canonical log records.
	Logs plog.Logs
	// Items is the number of items the request carried (events, log records
	// or spans).
	Items int
	// Accepted is the number of log records in Logs.
	Accepted int
	// IDs are the event ids of the accepted events, in request order.
	IDs []string
	// Rejected lists every item that was not accepted, with its reasons.
	Rejected []Rejection
}

// Summary joins the first rejections into one message, for protocols (OTLP
// partial success, gRPC status) that carry a single string.
func (r *Result) Summary(limit int) string {
	var b strings.Builder
	for i, rej := range r.Rejected {
		if i == limit {
			fmt.Fprintf(&b, "; … and %d more", len(r.Rejected)-limit)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(rej.String())
	}
	return b.String()
}

// RequestError rejects a whole request before any item is looked at.
type RequestError struct {
	// TooLarge is set when a size limit was exceeded (HTTP 413); Limit when
	// another limit was (nesting depth: HTTP 400, counted as "limit");
	// otherwise the body is malformed (HTTP 400).
	TooLarge bool
	Limit    bool
	Msg      string
}

func (e *RequestError) Error() string { return e.Msg }

func tooMany(n, limit int) error {
	return &RequestError{TooLarge: true, Msg: fmt.Sprintf("request carries %d events; limits.max_events_per_request is %d: split the request", n, limit)}
}

func malformed(format string, args ...any) error {
	return &RequestError{Msg: fmt.Sprintf(format, args...)}
}

// finish completes ev (format, deterministic id), validates it and reports
// the problems found while parsing plus the model's. It returns the
// rejection, or nil when ev is valid.
// digest, when set, stands for the item's canonical content in the
// deterministic id (OpenLineage: SHA-256 of the compacted original).
// principal is who the request was authenticated as ("" without auth); it
// is recorded on the event, and a job may not send one of its own.
//
// Before anything else, checkEvent applies the limits and refuses values that
// cannot be stored exactly; such an event gets no derived id (its canonical
// form cannot be computed) and is rejected with those problems.
//
// ps pseudonymizes the event after the record hash was checked against the
// data as sent and before the id is derived, so a derived id is no hash
// of the plaintext either.
func finish(ev *auditevent.Event, format, digest, principal string, parseProblems []auditevent.FieldError, l Limits, ps *Pseudonymizer) *Rejection {
	if ev.OriginalFormat == "" {
		ev.OriginalFormat = format
	}
	probs := parseProblems
	if ev.AuthPrincipal != "" {
		probs = append(probs, auditevent.FieldError{Field: auditevent.AttrAuthPrincipal,
			Reason: "is set by the collector from the request's authentication; a job cannot send it"})
	}
	ev.AuthPrincipal = principal
	if ev.Name == auditevent.RetentionPrune {
		// verify trusts this event to explain a pruned prefix of the trail.
		probs = append(probs, auditevent.FieldError{Field: "event_name",
			Reason: auditevent.RetentionPrune + " is written by `batchaudit retention` only; a job cannot send it"})
	}
	valueProbs, overLimit := checkEvent(ev, l.orDefault())
	if len(valueProbs) > 0 {
		return &Rejection{EventID: ev.ID, EventName: auditevent.KnownOrEmpty(ev.Name), OverLimit: overLimit,
			Problems: withoutRedundant(append(probs, valueProbs...), ev, true)}
	}
	checkRecordHash(ev)
	if ev.JobConfig != nil && ev.JobConfigHash == "" {
		// The hash makes configurations comparable across runs, also with
		// jobs that send only a hash (computed the same way).
		if h, err := canonical.Hash(ev.JobConfig); err == nil {
			ev.JobConfigHash = h
		}
	}
	ps.apply(ev)
	if ev.ID == "" && digest != "" {
		if principal != "" {
			ev.ID = auditevent.DeterministicID(format, digest, principal)
		} else {
			ev.ID = auditevent.DeterministicID(format, digest)
		}
	}
	if ev.ID == "" {
		if h, err := ev.Hash(); err != nil {
			probs = append(probs, auditevent.FieldError{Field: auditevent.AttrEventID,
				Reason: "missing, and no deterministic id can be derived: " + err.Error()})
		} else {
			// The id covers the format and the event's canonical content, so
			// a client retrying the same request gets the same ids.
			ev.ID = auditevent.DeterministicID(format, h)
		}
	}
	if err := ev.Validate(); err != nil {
		if ve, ok := err.(*auditevent.ValidationError); ok {
			probs = append(probs, ve.Problems...)
		} else {
			probs = append(probs, auditevent.FieldError{Field: "event", Reason: err.Error()})
		}
	}
	if len(probs) == 0 {
		return nil
	}
	return &Rejection{EventID: ev.ID, EventName: auditevent.KnownOrEmpty(ev.Name), Problems: withoutRedundant(probs, ev, false)}
}

// withoutRedundant completes probs with Validate's problems when
// validate is set, and drops its "timestamp is required" when a time was
// sent but could not be read (that problem is listed already).
func withoutRedundant(probs []auditevent.FieldError, ev *auditevent.Event, validate bool) []auditevent.FieldError {
	if validate {
		if ve, ok := ev.Validate().(*auditevent.ValidationError); ok {
			for _, p := range ve.Problems {
				if p.Field == auditevent.AttrEventID && ev.ID == "" {
					continue // no id is derived for an event that cannot be stored
				}
				probs = append(probs, p)
			}
		}
	}
	timeListed := false
	for _, p := range probs {
		if timeFields[p.Field] && p.Reason != requiredReason {
			timeListed = true
		}
	}
	if !timeListed {
		return probs
	}
	return slices.DeleteFunc(probs, func(p auditevent.FieldError) bool { return p.Field == "timestamp" && p.Reason == requiredReason })
}

// requiredReason is Validate's reason for a missing timestamp.
const requiredReason = "is required"

// eventSink collects events into a single resource/scope.
type eventSink struct {
	res       *Result
	format    string
	principal string
	scope     plog.ScopeLogs
	// ev is the one event the parsers fill, item after item: its contents
	// are copied into pdata by add, and reusing it saves an allocation of
	// the (large) Event per item.
	ev     *auditevent.Event
	limits Limits
	ps     *Pseudonymizer
}

func newEventSink(format string, opt Options) *eventSink {
	r := &Result{Logs: plog.NewLogs()}
	sl := r.Logs.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty()
	sl.Scope().SetName(opt.ScopeName)
	return &eventSink{res: r, format: format, principal: opt.Principal, scope: sl, ev: new(auditevent.Event), limits: opt.Limits, ps: opt.Pseudonymize}
}

// next returns the sink's event, cleared for the next item.
func (s *eventSink) next() *auditevent.Event {
	*s.ev = auditevent.Event{}
	return s.ev
}

// add finishes ev and either appends it or records the rejection for item idx.
func (s *eventSink) add(idx int, ev *auditevent.Event, digest string, probs []auditevent.FieldError) {
	if rej := finish(ev, s.format, digest, s.principal, probs, s.limits, s.ps); rej != nil {
		rej.Index = idx
		s.res.Rejected = append(s.res.Rejected, *rej)
		return
	}
	ev.ToLogRecord(s.scope.LogRecords().AppendEmpty())
	s.res.Accepted++
	s.res.IDs = append(s.res.IDs, ev.ID)
}

func (s *eventSink) reject(idx int, field, reason string) {
	s.res.Rejected = append(s.res.Rejected, Rejection{Index: idx, Problems: []auditevent.FieldError{{Field: field, Reason: reason}}})
}
