package ingest

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchaudit/batchaudit/auditevent"
)

func olOne(t *testing.T, file string) auditevent.Event {
	r, err := OpenLineage(readTestdata(t, "openlineage", file), opts)
	require.NoError(t, err)
	require.Empty(t, r.Rejected, "%+v", r.Rejected)
	evs := events(t, r)
	require.Len(t, evs, 1)
	return evs[0]
}

func TestOpenLineageRunStart(t *testing.T) {
	ev := olOne(t, "run_start.json")
	assert.Equal(t, auditevent.BatchStart, ev.Name)
	assert.Equal(t, "START", ev.BatchState)
	assert.Equal(t, "01934f5e-7c2a-7b3e-9f41-2d6b8c0a1e55", ev.BatchID)
	assert.Equal(t, "01934f5e-6000-7000-8000-000000000001", ev.ParentBatchID)
	assert.Equal(t, "airflow-prod", ev.JobNamespace)
	assert.Equal(t, "daily_sales.load_orders", ev.JobName)
	assert.Equal(t, time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC), ev.Time)
	assert.Equal(t, []string{"postgres://db.internal:5432/staging.orders"}, ev.InputDatasets)
	assert.Equal(t, auditevent.Dataset{Namespace: "postgres://db.internal:5432", Name: "staging.orders"}, ev.Source)
	assert.Equal(t, auditevent.Dataset{Namespace: "postgres://db.internal:5432", Name: "analytics.orders"}, ev.Target)
	assert.Equal(t, "01934f5e600070008000000000000001", ev.TraceID, "trace id = root run id")
	assert.Equal(t, "2026-11-01T00:00:00Z", ev.LogicalDate, "from the nominalTime facet")
	assert.Len(t, ev.SpanID, 16)
	assert.Nil(t, ev.Counters)
	assert.Equal(t, FormatOpenLineage, ev.OriginalFormat)
	var orig map[string]any
	require.NoError(t, json.Unmarshal([]byte(ev.Original), &orig), "original kept as JSON")
	assert.Equal(t, "START", orig["eventType"])
	assert.NotContains(t, ev.Original, "\n  ", "original is compacted")
}

func TestOpenLineageRunComplete(t *testing.T) {
	ev := olOne(t, "run_complete.json")
	assert.Equal(t, auditevent.BatchEnd, ev.Name)
	assert.Equal(t, auditevent.ResultSuccess, ev.BatchResult)
	assert.Equal(t, "COMPLETE", ev.BatchState)
	assert.Equal(t, &auditevent.Counters{Read: 12500 + 32, Written: 12480}, ev.Counters)
	assert.Len(t, ev.InputDatasets, 2)
	assert.True(t, ev.Source.IsZero(), "no single source with two inputs")
	cl := ev.ColumnLineage["postgres://db.internal:5432/analytics.orders"].(map[string]any)
	amount := cl["amount_eur"].([]any)
	require.Len(t, amount, 2)
	first := amount[0].(map[string]any)
	assert.Equal(t, "staging.orders", first["name"])
	assert.Equal(t, "amount", first["field"])
	tr := first["transformations"].([]any)[0].(map[string]any)
	assert.Equal(t, "TRANSFORMATION", tr["subtype"])
	assert.Equal(t, false, tr["masking"])
	assert.Len(t, cl["*"].([]any), 1, "dataset-level inputs under *")
}

func TestOpenLineageRunFailAbortRunning(t *testing.T) {
	ev := olOne(t, "run_fail.json")
	assert.Equal(t, auditevent.BatchEnd, ev.Name)
	assert.Equal(t, auditevent.ResultFailure, ev.BatchResult)
	assert.Equal(t, "FAIL", ev.BatchState)
	assert.Contains(t, ev.ErrorMessage, "Job aborted due to stage failure")
	assert.Contains(t, ev.ErrorStacktrace, "DAGScheduler")
	assert.Equal(t, "JAVA error", ev.ErrorType)
	assert.Equal(t, auditevent.Dataset{Namespace: "s3://lake-raw", Name: "customers/2026-11-01"}, ev.Source)

	for state, want := range map[string][2]string{
		"ABORT": {auditevent.BatchEnd, auditevent.ResultCancellation}, "RUNNING": {auditevent.BatchProgress, ""}, "OTHER": {auditevent.BatchProgress, ""},
	} {
		raw := bytes.Replace(readTestdata(t, "openlineage", "run_fail.json"), []byte(`"FAIL"`), []byte(`"`+state+`"`), 1)
		got, probs, err := EventFromOpenLineage(raw)
		require.NoError(t, err)
		require.Empty(t, probs)
		assert.Equal(t, want[0], got.Name, state)
		assert.Equal(t, want[1], got.BatchResult, state)
	}
}

func TestOpenLineageJobAndDatasetEvents(t *testing.T) {
	job := olOne(t, "job_event.json")
	assert.Equal(t, auditevent.OpenLineageJob, job.Name)
	assert.Equal(t, "analytics.orders_daily", job.JobName)
	assert.Equal(t, "dbt-prod", job.JobNamespace)
	assert.Equal(t, []string{"postgres://db.internal:5432/analytics.orders_daily"}, job.OutputDatasets)
	assert.Empty(t, job.BatchID)

	ds := olOne(t, "dataset_event.json")
	assert.Equal(t, auditevent.OpenLineageDataset, ds.Name)
	assert.Equal(t, auditevent.Dataset{Namespace: "postgres://db.internal:5432", Name: "analytics.orders"}, ds.Target)
}

func TestOpenLineageBatchAndProblems(t *testing.T) {
	var arr []json.RawMessage
	for _, f := range []string{"run_start.json", "run_complete.json", "job_event.json"} {
		arr = append(arr, readTestdata(t, "openlineage", f))
	}
	arr = append(arr,
		json.RawMessage(`{"eventType":"START","run":{},"job":{"name":"x"},"eventTime":"2026-11-01T00:00:00Z"}`),
		json.RawMessage(`{"eventType":"BOOM","run":{"runId":"r"},"job":{"namespace":"n","name":"x"},"eventTime":"2026-11-01T00:00:00Z","producer":"p","schemaURL":"s"}`),
		json.RawMessage(`{"run":{"runId":42}}`),
		json.RawMessage(`{"hello":"world"}`),
	)
	body, err := json.Marshal(arr)
	require.NoError(t, err)
	r, err := OpenLineage(body, opts)
	require.NoError(t, err)
	assert.Equal(t, 7, r.Items)
	assert.Equal(t, 3, r.Accepted)
	require.Len(t, r.Rejected, 4)
	fields := func(rej Rejection) []string {
		var out []string
		for _, p := range rej.Problems {
			out = append(out, p.Field)
		}
		return out
	}
	assert.Subset(t, fields(r.Rejected[0]), []string{"producer", "run.runId", "job.namespace", auditevent.AttrBatchID})
	assert.NotContains(t, fields(r.Rejected[0]), "schemaURL", "the spec's own examples leave schemaURL out")
	assert.Subset(t, fields(r.Rejected[1]), []string{"eventType", "run.runId"})
	assert.Contains(t, r.Rejected[2].Problems[0].Reason, `"run.runId" must be string`)
	assert.Contains(t, fields(r.Rejected[3]), "run|job|dataset")

	// NDJSON form of the same valid events.
	nd := bytes.Join([][]byte{compact(t, arr[0]), compact(t, arr[1])}, []byte("\n"))
	r2, err := OpenLineage(nd, opts)
	require.NoError(t, err)
	assert.Equal(t, 2, r2.Accepted)
	assert.Equal(t, r.IDs[:2], r2.IDs, "same events, same deterministic ids")
}

func compact(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	require.NoError(t, json.Compact(&buf, b))
	return buf.Bytes()
}

func TestIsCompactMatchesCompact(t *testing.T) {
	for _, raw := range []string{
		`{}`, `{"a":1}`, `{ "a":1}`, `{"a":"x y"}`, `{"a":"\" "}`, `{"a":"\\"}`, `{"a":"\\", "b":1}`,
		"{\"a\":[1,\n2]}", "{\"a\":\"\\u0020\"}\t", `{"a":"\\\" x"}`, `[{"a":{"b":" "}} ]`,
	} {
		var buf bytes.Buffer
		require.NoError(t, json.Compact(&buf, []byte(raw)), raw)
		assert.Equal(t, buf.String() == raw, isCompact([]byte(raw)), raw)
	}
}

// Identity fields follow the spec: a run id is a UUID, and a dataset is its
// namespace and name. Each bad event is explained; the good ones beside it
// are accepted.
func TestOpenLineageIdentity(t *testing.T) {
	good := `{"eventType":"START","eventTime":"2026-11-01T00:00:00Z","producer":"p","run":{"runId":"3b452093-782c-4ef2-9c0c-aafe2aa6f34d"},` +
		`"job":{"namespace":"n","name":"j"},"inputs":[{"namespace":"file","name":"/data/in.csv"}],"outputs":[{"namespace":"s3://b","name":"out"}]}`
	body := `[` + good + `,
	  {"eventType":"START","eventTime":"2026-11-01T00:00:00Z","producer":"p","run":{"runId":"run-42"},"job":{"namespace":"n","name":"j"}},
	  {"eventType":"COMPLETE","eventTime":"2026-11-01T00:00:00Z","producer":"p","run":{"runId":"3b452093-782c-4ef2-9c0c-aafe2aa6f34d",
	    "facets":{"parent":{"run":{"runId":"parent-1"},"job":{"namespace":"n","name":"p"}}}},"job":{"namespace":"n","name":"j"},
	    "inputs":[{"namespace":"test","name":"jdbc_source1"},{"name":"nameless-ns"}],"outputs":[{"namespace":"file"}]}]`
	r, err := OpenLineage([]byte(body), opts)
	require.NoError(t, err)
	require.Equal(t, 1, r.Accepted)
	ev := events(t, r)[0]
	assert.Equal(t, []string{"file:/data/in.csv"}, ev.InputDatasets, "dataset ids per OpenLineage naming")
	assert.Equal(t, []string{"s3://b/out"}, ev.OutputDatasets)
	require.Len(t, r.Rejected, 2)
	assert.Equal(t, 1, r.Rejected[0].Index)
	assert.Equal(t, []auditevent.FieldError{{Field: "run.runId",
		Reason: "must be a UUID (OpenLineage: a run id is a client-generated UUID)"}}, r.Rejected[0].Problems)
	assert.Equal(t, 2, r.Rejected[1].Index)
	var fields []string
	for _, p := range r.Rejected[1].Problems {
		fields = append(fields, p.Field)
	}
	assert.Equal(t, []string{"run.facets.parent.run.runId", "inputs[1].namespace", "outputs[0].name"}, fields)
}

func TestOpenLineageByteCounts(t *testing.T) {
	raw := `{"eventType":"COMPLETE","eventTime":"2026-11-01T00:00:00Z","producer":"p","run":{"runId":"3b452093-782c-4ef2-9c0c-aafe2aa6f34d"},` +
		`"job":{"namespace":"n","name":"j"},"inputs":[{"namespace":"file","name":"/a","inputFacets":{"inputStatistics":{"rowCount":10,"size":1000}}}],` +
		`"outputs":[{"namespace":"file","name":"/b","outputFacets":{"outputStatistics":{"rowCount":7,"size":700,"fileCount":1}}},` +
		`{"namespace":"file","name":"/c","outputFacets":{"outputStatistics":{"rowCount":1,"size":5}}}]}`
	ev, probs, err := EventFromOpenLineage([]byte(raw))
	require.NoError(t, err)
	require.Empty(t, probs)
	assert.Equal(t, &auditevent.Counters{Read: 10, Written: 8}, ev.Counters)
	require.NotNil(t, ev.BytesRead)
	require.NotNil(t, ev.BytesWritten)
	assert.Equal(t, [2]int64{1000, 705}, [2]int64{*ev.BytesRead, *ev.BytesWritten})

	// A nominal time that is only a date is kept as sent.
	ev, probs, err = EventFromOpenLineage([]byte(`{"eventType":"START","eventTime":"2026-11-01T00:00:00Z","producer":"p",` +
		`"run":{"runId":"3b452093-782c-4ef2-9c0c-aafe2aa6f34d","facets":{"nominalTime":{"nominalStartTime":"2020-01-01"}}},"job":{"namespace":"n","name":"j"}}`))
	require.NoError(t, err)
	require.Empty(t, probs)
	assert.Equal(t, "2020-01-01", ev.LogicalDate)
}
