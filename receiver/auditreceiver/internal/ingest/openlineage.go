package ingest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/batchaudit/batchaudit/auditevent"
)

// OpenLineage types of spec 2-0-x, reduced to the fields the mapping reads.
// Everything else stays available in batchaudit.original.
type (
	olEvent struct {
		EventType string      `json:"eventType"`
		EventTime string      `json:"eventTime"`
		Producer  string      `json:"producer"`
		SchemaURL string      `json:"schemaURL"`
		Run       *olRun      `json:"run"`
		Job       *olJob      `json:"job"`
		Inputs    []olDataset `json:"inputs"`
		Outputs   []olDataset `json:"outputs"`
		Dataset   *olDataset  `json:"dataset"`
	}
	olRun struct {
		RunID  string `json:"runId"`
		Facets struct {
			Parent       *olParent `json:"parent"`
			ErrorMessage *struct {
				Message             string `json:"message"`
				ProgrammingLanguage string `json:"programmingLanguage"`
				StackTrace          string `json:"stackTrace"`
			} `json:"errorMessage"`
			NominalTime *struct {
				NominalStartTime string `json:"nominalStartTime"`
			} `json:"nominalTime"`
		} `json:"facets"`
	}
	olRunRef struct {
		Run struct {
			RunID string `json:"runId"`
		} `json:"run"`
		Job olJob `json:"job"`
	}
	olParent struct {
		olRunRef
		Root *olRunRef `json:"root"`
	}
	olJob struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	}
	olDataset struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
		Facets    struct {
			ColumnLineage      *olColumnLineage `json:"columnLineage"`
			DataQualityMetrics *olRowCount      `json:"dataQualityMetrics"`
		} `json:"facets"`
		InputFacets struct {
			DataQualityMetrics *olRowCount `json:"dataQualityMetrics"`
			InputStatistics    *olRowCount `json:"inputStatistics"`
		} `json:"inputFacets"`
		OutputFacets struct {
			OutputStatistics *olRowCount `json:"outputStatistics"`
		} `json:"outputFacets"`
	}
	olRowCount struct {
		RowCount *int64 `json:"rowCount"`
		Size     *int64 `json:"size"`
	}
	olColumnLineage struct {
		Fields map[string]struct {
			InputFields []olInputField `json:"inputFields"`
		} `json:"fields"`
		Dataset []olInputField `json:"dataset"`
	}
	olInputField struct {
		Namespace       string `json:"namespace"`
		Name            string `json:"name"`
		Field           string `json:"field"`
		Transformations []struct {
			Type        string `json:"type"`
			Subtype     string `json:"subtype"`
			Description string `json:"description"`
			Masking     *bool  `json:"masking"`
		} `json:"transformations"`
	}
)

// OpenLineage parses OpenLineage RunEvents, JobEvents and DatasetEvents: one
// event, a JSON array of events, or NDJSON.
func OpenLineage(body []byte, opt Options) (*Result, error) {
	if !opt.NDJSON {
		if res, ok := openLineageArray(body, opt); ok {
			return res, nil
		}
	}
	return openLineageItems(body, opt)
}

// openLineageItems is OpenLineage for any body shape: items delimited first.
func openLineageItems(body []byte, opt Options) (*Result, error) {
	items, err := splitItems(body, opt)
	if err != nil {
		return nil, err
	}
	sink := newEventSink(FormatOpenLineage, opt)
	sink.res.Items = len(items)
	for i, raw := range items {
		addOpenLineage(sink, i, raw, nil)
	}
	return sink.res, nil
}

// openLineageArray is the common case of OpenLineage, a well-formed JSON
// array within limits, in one pass: each element is decoded where it is
// found instead of being delimited first. ok is false for any other body;
// the caller then takes the general path, which words the request errors.
func openLineageArray(body []byte, opt Options) (*Result, bool) {
	sink := newEventSink(FormatOpenLineage, opt)
	strs := map[string]string{}
	err := arrayItems(body, opt.MaxEvents, func(r *reader, n int) error {
		start := r.i
		var ol olEvent
		d := olDecoder{r: reader{b: r.b, i: start}, strs: strs}
		if d.peek() == '{' && d.event(&ol) {
			r.i = d.r.i
			addOpenLineage(sink, n, r.b[start:r.i], &decoded{ol: &ol, spaced: d.spaced})
		} else {
			// As splitArray delimits it; the item parser words the error.
			if _, err := r.value(true); err != nil {
				return err
			}
			addOpenLineage(sink, n, r.b[start:r.i], nil)
		}
		sink.res.Items++
		return nil
	})
	return sink.res, err == nil
}

// decoded is an item the single-pass decoder has already read.
type decoded struct {
	ol     *olEvent
	spaced bool
}

func addOpenLineage(sink *eventSink, i int, raw []byte, pre *decoded) {
	if p := textProblem(raw); p != "" {
		sink.reject(i, "item", p)
		return
	}
	ev := sink.next()
	var probs []auditevent.FieldError
	var orig []byte
	var err error
	*ev, probs, orig, err = eventFromOpenLineageDecoded(raw, pre)
	if err != nil {
		sink.reject(i, "item", err.Error())
		return
	}
	// The compacted original is the item's canonical content; hashing it
	// is much cheaper than canonicalizing an event that embeds it.
	sum := sha256.Sum256(orig)
	sink.add(i, ev, hex.EncodeToString(sum[:]), probs)
}

// EventFromOpenLineage maps one OpenLineage event onto a canonical event. The
// error is set when raw is not an OpenLineage event object at all; problems
// list spec violations (missing required fields) found on the way.
func EventFromOpenLineage(raw []byte) (auditevent.Event, []auditevent.FieldError, error) {
	ev, probs, _, err := eventFromOpenLineage(raw)
	return ev, probs, err
}

// eventFromOpenLineage is EventFromOpenLineage that also returns the bytes
// of ev.Original, so the caller can hash them without copying the string.
func eventFromOpenLineage(raw []byte) (auditevent.Event, []auditevent.FieldError, []byte, error) {
	return eventFromOpenLineageDecoded(raw, nil)
}

// eventFromOpenLineageDecoded is eventFromOpenLineage for an item pre
// already holds the decoded form of, when not nil.
func eventFromOpenLineageDecoded(raw []byte, pre *decoded) (auditevent.Event, []auditevent.FieldError, []byte, error) {
	var ev auditevent.Event
	var ol olEvent
	var spaced, ok bool
	if pre != nil {
		ol, spaced, ok = *pre.ol, pre.spaced, true
	} else {
		spaced, ok = decodeOpenLineage(raw, &ol)
	}
	if !ok {
		// Errors and the odd cases the single-pass decoder declines:
		// encoding/json decides, and words the error.
		ol = olEvent{}
		if err := json.Unmarshal(raw, &ol); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				return ev, nil, nil, fmt.Errorf("OpenLineage field %q must be %s, got JSON %s", te.Field, te.Type, te.Value)
			}
			return ev, nil, nil, errors.New(jsonErr(err))
		}
		spaced = !isCompact(raw)
	}
	var probs []auditevent.FieldError
	bad := func(field, format string, args ...any) {
		probs = append(probs, auditevent.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	if ol.EventTime == "" {
		bad("eventTime", "is required (OpenLineage BaseEvent)")
	} else if t, err := parseRFC3339(ol.EventTime, zonedLayouts); err != nil {
		bad("eventTime", "%s", err.Error())
	} else {
		ev.Time = t
	}
	if ol.Producer == "" {
		bad("producer", "is required (OpenLineage BaseEvent)")
	}
	// schemaURL is required by the JSON schema, but the spec's own example
	// events leave it out and nothing here depends on it: not checked.

	switch {
	case ol.Run != nil:
		mapRunEvent(&ev, &ol, bad)
	case ol.Dataset != nil:
		ev.Name = auditevent.OpenLineageDataset
		ev.Target = auditevent.Dataset{Namespace: ol.Dataset.Namespace, Name: ol.Dataset.Name}
		if ol.Dataset.Name == "" {
			bad("dataset.name", "is required (OpenLineage DatasetEvent)")
		}
		if ol.Dataset.Namespace == "" {
			bad("dataset.namespace", "is required (OpenLineage DatasetEvent)")
		}
		if cl := columnLineage([]olDataset{*ol.Dataset}); cl != nil {
			ev.ColumnLineage = cl
		}
	case ol.Job != nil:
		ev.Name = auditevent.OpenLineageJob
		mapJob(&ev, ol.Job, bad)
		mapDatasets(&ev, &ol, bad)
	default:
		bad("run|job|dataset", "not an OpenLineage event: a RunEvent needs run and job, a JobEvent job, a DatasetEvent dataset")
	}

	orig := raw // what json.Compact returns for compact input, without its second scan
	if spaced {
		var compact bytes.Buffer
		if err := json.Compact(&compact, raw); err == nil {
			orig = compact.Bytes()
		}
	}
	ev.Original = string(orig)
	ev.OriginalFormat = FormatOpenLineage
	return ev, probs, orig, nil
}

// isCompact reports whether the valid JSON raw has no whitespace outside
// strings, i.e. json.Compact would leave it unchanged. Producers and
// splitItems usually hand over compact items.
func isCompact(raw []byte) bool {
	// Fast path: no whitespace byte anywhere (IndexByte is vectorized).
	if bytes.IndexByte(raw, ' ') < 0 && bytes.IndexByte(raw, '\n') < 0 &&
		bytes.IndexByte(raw, '\t') < 0 && bytes.IndexByte(raw, '\r') < 0 {
		return true
	}
	inString := false
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case inString:
			if c == '\\' {
				i++ // the escaped character cannot end the string
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			return false
		}
	}
	return true
}

func mapRunEvent(ev *auditevent.Event, ol *olEvent, bad func(string, string, ...any)) {
	state := strings.ToUpper(ol.EventType)
	ev.BatchState = state
	switch state {
	case "START":
		ev.Name = auditevent.BatchStart
	case "COMPLETE":
		ev.Name, ev.BatchResult = auditevent.BatchEnd, auditevent.ResultSuccess
	case "FAIL":
		ev.Name, ev.BatchResult = auditevent.BatchEnd, auditevent.ResultFailure
	case "ABORT":
		ev.Name, ev.BatchResult = auditevent.BatchEnd, auditevent.ResultCancellation
	case "RUNNING", "OTHER", "":
		// eventType is optional in the spec; a run event without one is a
		// metadata update of a running batch.
		ev.Name = auditevent.BatchProgress
	default:
		bad("eventType", "is not one of START, RUNNING, COMPLETE, ABORT, FAIL, OTHER")
	}
	ev.BatchID = ol.Run.RunID
	if ol.Run.RunID == "" {
		bad("run.runId", "is required (OpenLineage RunEvent)")
	} else if !isUUID(ol.Run.RunID) {
		bad("run.runId", "must be a UUID (OpenLineage: a run id is a client-generated UUID)")
	}
	if ol.Job == nil {
		bad("job", "is required (OpenLineage RunEvent)")
	} else {
		mapJob(ev, ol.Job, bad)
	}
	rootRun := ol.Run.RunID
	if p := ol.Run.Facets.Parent; p != nil {
		ev.ParentBatchID = p.Run.RunID
		if p.Run.RunID != "" {
			rootRun = p.Run.RunID
			if !isUUID(p.Run.RunID) {
				bad("run.facets.parent.run.runId", "must be a UUID")
			}
		}
		if p.Root != nil && p.Root.Run.RunID != "" {
			rootRun = p.Root.Run.RunID
			if !isUUID(p.Root.Run.RunID) {
				bad("run.facets.parent.root.run.runId", "must be a UUID")
			}
		}
	}
	if nt := ol.Run.Facets.NominalTime; nt != nil && nt.NominalStartTime != "" {
		// The schedule time the run is for: its logical date. A facet is
		// optional metadata: a value that is no RFC 3339 date-time (a
		// date, say) is kept as sent rather than failing the run event.
		ev.LogicalDate = nt.NominalStartTime
		if t, err := time.Parse(time.RFC3339Nano, nt.NominalStartTime); err == nil {
			ev.LogicalDate = t.UTC().Format(time.RFC3339Nano)
		}
	}
	// A run id is a UUID, the size of a trace id: deriving the trace id from
	// the root run makes every run of one DAG share a trace, and jobs
	// instrumented with OTel can join their spans to it.
	if u, err := uuid.Parse(rootRun); err == nil {
		ev.TraceID = hex.EncodeToString(u[:])
		sum := sha256.Sum256([]byte(ol.Run.RunID))
		ev.SpanID = hex.EncodeToString(sum[:8])
	}
	if em := ol.Run.Facets.ErrorMessage; em != nil {
		ev.ErrorMessage = em.Message
		ev.ErrorStacktrace = em.StackTrace
		if em.ProgrammingLanguage != "" {
			ev.ErrorType = em.ProgrammingLanguage + " error"
		}
	}
	mapDatasets(ev, ol, bad)
	if ev.Name == auditevent.BatchEnd {
		ev.Counters = rowCounters(ol)
		ev.BytesRead, ev.BytesWritten = byteCounts(ol)
	}
}

// isUUID reports whether s is a UUID in its standard 36-character form.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}

func mapJob(ev *auditevent.Event, j *olJob, bad func(string, string, ...any)) {
	ev.JobName, ev.JobNamespace = j.Name, j.Namespace
	if j.Name == "" {
		bad("job.name", "is required")
	}
	if j.Namespace == "" {
		bad("job.namespace", "is required")
	}
}

// mapDatasets lists the inputs and outputs by dataset id. Namespace and name
// are a dataset's identity: a dataset without either is reported.
func mapDatasets(ev *auditevent.Event, ol *olEvent, bad func(string, string, ...any)) {
	for _, l := range [...]struct {
		what string
		ds   []olDataset
		dst  *[]string
	}{{"inputs", ol.Inputs, &ev.InputDatasets}, {"outputs", ol.Outputs, &ev.OutputDatasets}} {
		for i, d := range l.ds {
			if d.Namespace == "" {
				bad(fmt.Sprintf("%s[%d].namespace", l.what, i), "is required (OpenLineage Dataset)")
			}
			if d.Name == "" {
				bad(fmt.Sprintf("%s[%d].name", l.what, i), "is required (OpenLineage Dataset)")
			}
			*l.dst = append(*l.dst, auditevent.Dataset{Namespace: d.Namespace, Name: d.Name}.String())
		}
	}
	if len(ol.Inputs) == 1 {
		ev.Source = auditevent.Dataset{Namespace: ol.Inputs[0].Namespace, Name: ol.Inputs[0].Name}
	}
	if len(ol.Outputs) == 1 {
		ev.Target = auditevent.Dataset{Namespace: ol.Outputs[0].Namespace, Name: ol.Outputs[0].Name}
	}
	ev.ColumnLineage = columnLineage(ol.Outputs)
}

// rowCounters sums input and output row counts into batch-end counters:
// read from inputStatistics (or dataQualityMetrics) of the inputs, written
// from outputStatistics of the outputs. Nil when no row count was reported.
func rowCounters(ol *olEvent) *auditevent.Counters {
	var c auditevent.Counters
	seen := false
	for _, d := range ol.Inputs {
		for _, rc := range []*olRowCount{d.InputFacets.InputStatistics, d.InputFacets.DataQualityMetrics, d.Facets.DataQualityMetrics} {
			if rc != nil && rc.RowCount != nil {
				c.Read += *rc.RowCount
				seen = true
				break
			}
		}
	}
	for _, d := range ol.Outputs {
		if rc := d.OutputFacets.OutputStatistics; rc != nil && rc.RowCount != nil {
			c.Written += *rc.RowCount
			seen = true
		}
	}
	if !seen {
		return nil
	}
	return &c
}

// byteCounts sums the sizes the inputs' inputStatistics and the outputs'
// outputStatistics report; nil when none is reported.
func byteCounts(ol *olEvent) (read, written *int64) {
	sum := func(dst **int64, rc *olRowCount) {
		if rc != nil && rc.Size != nil {
			if *dst == nil {
				*dst = new(int64)
			}
			**dst += *rc.Size
		}
	}
	for _, d := range ol.Inputs {
		sum(&read, d.InputFacets.InputStatistics)
	}
	for _, d := range ol.Outputs {
		sum(&written, d.OutputFacets.OutputStatistics)
	}
	return read, written
}

// columnLineage flattens the columnLineage facets of datasets into
// output dataset → output field ("*" for whole-dataset inputs) → inputs.
func columnLineage(datasets []olDataset) map[string]any {
	var out map[string]any
	for _, d := range datasets {
		cl := d.Facets.ColumnLineage
		if cl == nil {
			continue
		}
		fields := map[string]any{}
		for f, in := range cl.Fields {
			fields[f] = inputFields(in.InputFields)
		}
		if len(cl.Dataset) > 0 {
			fields["*"] = inputFields(cl.Dataset)
		}
		if out == nil {
			out = map[string]any{}
		}
		out[auditevent.Dataset{Namespace: d.Namespace, Name: d.Name}.String()] = fields
	}
	return out
}

func inputFields(in []olInputField) []any {
	out := make([]any, 0, len(in))
	for _, f := range in {
		m := map[string]any{"namespace": f.Namespace, "name": f.Name, "field": f.Field}
		if len(f.Transformations) > 0 {
			ts := make([]any, 0, len(f.Transformations))
			for _, t := range f.Transformations {
				tm := map[string]any{"type": t.Type}
				if t.Subtype != "" {
					tm["subtype"] = t.Subtype
				}
				if t.Description != "" {
					tm["description"] = t.Description
				}
				if t.Masking != nil {
					tm["masking"] = *t.Masking
				}
				ts = append(ts, tm)
			}
			m["transformations"] = ts
		}
		out = append(out, m)
	}
	return out
}
