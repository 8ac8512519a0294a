package testbed

import (
	"bytes"
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/testbed/harness"
)

// Events in the shapes of the OpenLineage spec's own examples
// (website/docs/spec/examples.md and spec/tests/example_full_event.json of
// the OpenLineage repository), with values of our own: a START with one input
// and no schemaURL, the COMPLETE of the same run with one output, and a full
// COMPLETE event with job facets, empty inputs and outputs and an extra
// "dataset" member.
var specShapedEvents = []string{
	`{"eventType":"START","eventTime":"2026-11-01T19:52:00.001+10:00","run":{"runId":"5f0e8a8e-3c2b-4d3e-9a57-0f6c1b7e2d41"},
	  "job":{"namespace":"workshop","name":"process_invoices"},
	  "inputs":[{"namespace":"postgres://workshop-db:5432","name":"workshop.public.invoices"}],
	  "producer":"https://github.com/OpenLineage/OpenLineage/blob/v1-0-0/client"}`,
	`{"eventType":"COMPLETE","eventTime":"2026-11-01T20:52:00.001+10:00","run":{"runId":"5f0e8a8e-3c2b-4d3e-9a57-0f6c1b7e2d41"},
	  "job":{"namespace":"workshop","name":"process_invoices"},
	  "outputs":[{"namespace":"postgres://workshop-db:5432","name":"workshop.public.unpaid_invoices",
	    "facets":{"schema":{"_producer":"p","_schemaURL":"s","fields":[{"name":"id","type":"SERIAL PRIMARY KEY"}]}}}],
	  "producer":"https://github.com/OpenLineage/OpenLineage/blob/v1-0-0/client"}`,
	`{"eventTime":"2026-11-01T10:54:22.355067Z","eventType":"COMPLETE","inputs":[],
	  "job":{"facets":{"sql":{"query":"SELECT 1","_producer":"http://p","_schemaURL":"http://s"}},"name":"dbt","namespace":"food_delivery"},
	  "outputs":[],"producer":"https://github.com/OpenLineage/OpenLineage/tree/0.30.0/integration/airflow",
	  "run":{"facets":{},"runId":"a7c3b1de-6f0e-3c9a-9cf6-eacb70ecc9a9"},"dataset":{"namespace":"123","name":"1"},
	  "schemaURL":"https://openlineage.io/spec/1-0-5/OpenLineage.json#/definitions/RunEvent"}`,
}

func postLineage(t *testing.T, c *harness.Collector, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(c.HTTPEndpoint()+"/api/v1/lineage", "application/json", bytes.NewBufferString(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	var answer map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&answer))
	return resp.StatusCode, answer
}

// TestOpenLineageProducers: events shaped like the spec's examples and a
// Spark-like run sent with the real openlineage-python client (an action that
// reports output statistics, START-only child actions) give no finding; the
// START-only children end with their parent; identity fields that break the
// spec are answered 400 per item while the good event beside them is stored.
func TestOpenLineageProducers(t *testing.T) {
	root, err := harness.RepoRoot()
	require.NoError(t, err)
	dir := t.TempDir()
	c := harness.StartCollector(t, dir, harness.NewPorts(t), sqliteConfig())
	for _, ev := range specShapedEvents {
		code, answer := postLineage(t, c, ev)
		require.Equal(t, http.StatusOK, code, "%v", answer)
	}

	const (
		app    = "0b5f4b7e-1f2a-4c8e-9d3b-6a1e2f3c4d50"
		action = "0b5f4b7e-1f2a-4c8e-9d3b-6a1e2f3c4d51"
		map1   = "0b5f4b7e-1f2a-4c8e-9d3b-6a1e2f3c4d52"
		map2   = "0b5f4b7e-1f2a-4c8e-9d3b-6a1e2f3c4d53"
	)
	harness.RunCommand(t, 2*time.Minute, nil, python(t), filepath.Join(root, "testbed/python/openlineage_spark_job.py"),
		c.HTTPEndpoint(), app, action, map1, map2)

	good := `{"eventType":"COMPLETE","eventTime":"2026-11-01T00:00:00Z","producer":"p","run":{"runId":"3b452093-782c-4ef2-9c0c-aafe2aa6f34d"},"job":{"namespace":"n","name":"good"}}`
	code, answer := postLineage(t, c, `[`+good+`,
	  {"eventType":"START","eventTime":"2026-11-01T00:00:00Z","producer":"p","run":{"runId":"run-42"},"job":{"namespace":"n","name":"j"}},
	  {"eventType":"COMPLETE","eventTime":"2026-11-01T00:00:00Z","producer":"p","run":{"runId":"3b452093-782c-4ef2-9c0c-aafe2aa6f34e"},
	   "job":{"namespace":"n","name":"j"},"inputs":[{"name":"jdbc_source1"}],"outputs":[{"namespace":"file"}]}]`)
	require.Equal(t, http.StatusBadRequest, code)
	assert.EqualValues(t, 1, answer["accepted"])
	errs := answer["errors"].([]any)
	require.Len(t, errs, 2)
	fields := func(e any) (out []string) {
		for _, p := range e.(map[string]any)["problems"].([]any) {
			out = append(out, p.(map[string]any)["field"].(string))
		}
		return out
	}
	assert.EqualValues(t, 1, errs[0].(map[string]any)["index"])
	assert.Equal(t, []string{"run.runId"}, fields(errs[0]))
	assert.EqualValues(t, 2, errs[1].(map[string]any)["index"])
	assert.Equal(t, []string{"inputs[0].namespace", "outputs[0].name"}, fields(errs[1]))

	waitSettled(t, c)
	c.Stop()

	s := openSQLite(t, dir)
	runs, err := s.Runs(t.Context(), store.RunQuery{})
	require.NoError(t, err)
	byID := map[string]store.Run{}
	for _, r := range runs {
		byID[r.BatchID] = r
		assert.Zero(t, r.Findings, "run %s (%s): no finding", r.BatchID, r.JobName)
		assert.Equal(t, auditevent.ResultSuccess, r.Status, "run %s (%s) ended", r.BatchID, r.JobName)
	}
	for _, id := range []string{"5f0e8a8e-3c2b-4d3e-9a57-0f6c1b7e2d41", "a7c3b1de-6f0e-3c9a-9cf6-eacb70ecc9a9",
		app, action, map1, map2, "3b452093-782c-4ef2-9c0c-aafe2aa6f34d"} {
		require.Contains(t, byID, id)
	}
	assert.NotContains(t, byID, "run-42")
	assert.Equal(t, "orders_app.map_partitions_1", byID[map1].JobName)
	assert.Equal(t, app, byID[map1].ParentBatchID)

	a := byID[action]
	assert.Equal(t, [2]int64{0, 85}, [2]int64{a.Read, a.Written}, "the run reconciles from its statistics")
	assert.Equal(t, []string{"file:/data/in/orders.csv"}, a.Sources, "dataset ids per OpenLineage naming")
	assert.Equal(t, []string{"file:/data/warehouse/orders"}, a.Targets)

	var childEnds int
	for _, id := range []string{map1, map2} {
		for _, e := range runEvents(t, s, id) {
			if e.Name == auditevent.BatchEnd {
				childEnds++
				assert.Equal(t, "lineageprocessor", e.DerivedBy)
				assert.Equal(t, app, e.ParentBatchID)
			}
		}
	}
	assert.Equal(t, 2, childEnds, "each START-only child ends with its parent")

	var edge, end bool
	for _, e := range runEvents(t, s, action) {
		switch e.Name {
		case auditevent.LineageDataset:
			edge = true
			assert.Equal(t, auditevent.Dataset{Namespace: "file", Name: "/data/in/orders.csv"}, e.Source)
			assert.Equal(t, []string{"file:/data/warehouse/orders"}, e.OutputDatasets)
		case auditevent.BatchEnd:
			end = true
			require.NotNil(t, e.BytesWritten)
			assert.Equal(t, int64(4096), *e.BytesWritten)
		}
	}
	assert.True(t, edge && end)
}
