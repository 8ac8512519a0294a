package estest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchaudit/batchaudit/internal/estest"
)

// validName is what Elasticsearch accepts for index, data stream and template
// names, restricted further to what UniqueName promises.
var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*[a-z0-9]$`)

func TestUniqueName(t *testing.T) {
	seen := map[string]bool{}
	for _, sub := range []string{"plain", "Weird/Name With SPACES_and:colons,#*?", "-leading-dash"} {
		t.Run(sub, func(t *testing.T) {
			for _, prefix := range []string{"audit", "Audit_Events", "", "_x"} {
				n := estest.UniqueName(t, prefix)
				assert.Regexp(t, validName, n)
				assert.LessOrEqual(t, len(n), 120, n)
				assert.False(t, seen[n], "duplicate name %s", n)
				seen[n] = true
			}
		})
	}
	long := estest.UniqueName(t, "p")
	assert.True(t, strings.HasPrefix(long, "p-testuniquename-"), long)
}

func TestNodeIsElasticsearch8(t *testing.T) {
	c := estest.Require(t)

	// Version from the node itself: GET / (client.Info, client.Ping) does not
	// exist on the integ-test distribution, see docs/elasticsearch.md.
	res, err := c.Nodes.Info(c.Nodes.Info.WithNodeID("_local"), c.Nodes.Info.WithFilterPath("nodes.*.version"))
	body := okBody(t, res, err)
	assert.Equal(t, "Elasticsearch", res.Header.Get("X-Elastic-Product"))
	var info struct {
		Nodes map[string]struct {
			Version string `json:"version"`
		} `json:"nodes"`
	}
	require.NoError(t, json.Unmarshal(body, &info), string(body))
	require.Len(t, info.Nodes, 1, string(body))
	for _, n := range info.Nodes {
		assert.Regexp(t, `^8\.\d+\.\d+$`, n.Version)
		t.Logf("Elasticsearch %s at %s", n.Version, estest.URL())
	}

	res, err = c.Cluster.Health()
	body = okBody(t, res, err)
	var health struct {
		Status        string `json:"status"`
		NumberOfNodes int    `json:"number_of_nodes"`
	}
	require.NoError(t, json.Unmarshal(body, &health))
	assert.Contains(t, []string{"green", "yellow"}, health.Status)
	assert.Equal(t, 1, health.NumberOfNodes)
}

type auditEvent struct {
	ID         string
	JobID      string
	Event      string
	DurationMS int64
	Queue      string
}

func (e auditEvent) source(ts time.Time) map[string]any {
	return map[string]any{
		"@timestamp":  ts.UTC().Format(time.RFC3339Nano),
		"job_id":      e.JobID,
		"event":       e.Event,
		"duration_ms": e.DurationMS,
		"host":        map[string]any{"name": "worker-" + e.JobID},
		"attrs":       map[string]any{"queue": e.Queue},
	}
}

// auditTemplate is a composable template using only core field types, which
// the test node has (no match_only_text, wildcard or constant_keyword).
func auditTemplate(patterns []string, dataStream bool) string {
	t := map[string]any{
		"index_patterns": patterns,
		"priority":       500,
		"template": map[string]any{
			"settings": map[string]any{"number_of_shards": 1, "number_of_replicas": 0},
			"mappings": map[string]any{
				"dynamic": "strict",
				"properties": map[string]any{
					"@timestamp":  map[string]any{"type": "date"},
					"job_id":      map[string]any{"type": "keyword"},
					"event":       map[string]any{"type": "keyword"},
					"duration_ms": map[string]any{"type": "long"},
					"host": map[string]any{"type": "object", "properties": map[string]any{
						"name": map[string]any{"type": "keyword"},
					}},
					"attrs": map[string]any{"type": "flattened"},
				},
			},
		},
	}
	if dataStream {
		t["data_stream"] = map[string]any{}
	}
	b, err := json.Marshal(t)
	if err != nil {
		panic(err)
	}
	return string(b)
}

var events = []auditEvent{
	{"a1", "job-1", "started", 0, "default"},
	{"a2", "job-1", "succeeded", 1200, "default"},
	{"a3", "job-2", "started", 0, "gpu"},
	{"a4", "job-2", "failed", 300, "gpu"},
	{"a5", "job-3", "started", 0, "default"},
	{"a6", "job-3", "failed", 50, "default"},
	{"a7", "job-3", "started", 0, "default"},
}

func TestTemplateBulkSearchAggregate(t *testing.T) {
	c := estest.Require(t)
	tmpl := estest.UniqueName(t, "audit")
	index := tmpl + "-000001"
	estest.PutIndexTemplate(t, c, tmpl, auditTemplate([]string{tmpl + "-*"}, false))
	estest.TrackIndex(t, c, tmpl+"-*")

	// The bulk request creates the index from the template. The last item
	// repeats a4's _id with other content: `create` must refuse it with 409.
	base := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	dup := auditEvent{"a4", "job-2", "succeeded", 1, "gpu"}
	items := bulkCreate(t, c, index, append(append([]auditEvent{}, events...), dup), base)
	require.Len(t, items, len(events)+1)
	for i := range events {
		assert.Equal(t, http.StatusCreated, items[i].Status, "item %d: %+v", i, items[i])
		assert.Equal(t, events[i].ID, items[i].ID)
		assert.Equal(t, index, items[i].Index)
	}
	last := items[len(events)]
	assert.Equal(t, http.StatusConflict, last.Status, "duplicate _id: %+v", last)
	assert.Equal(t, "a4", last.ID)
	assert.Equal(t, "version_conflict_engine_exception", last.Error.Type)

	// The index got the template's mapping, not dynamic mapping.
	res, err := c.Indices.GetMapping(c.Indices.GetMapping.WithIndex(index))
	body := okBody(t, res, err)
	var mapping map[string]struct {
		Mappings struct {
			Properties map[string]struct {
				Type string `json:"type"`
			} `json:"properties"`
		} `json:"mappings"`
	}
	require.NoError(t, json.Unmarshal(body, &mapping))
	props := mapping[index].Mappings.Properties
	assert.Equal(t, "date", props["@timestamp"].Type)
	assert.Equal(t, "keyword", props["job_id"].Type)
	assert.Equal(t, "long", props["duration_ms"].Type)
	assert.Equal(t, "flattened", props["attrs"].Type)

	res, err = c.Indices.Refresh(c.Indices.Refresh.WithIndex(index))
	okBody(t, res, err)

	// Term query: a4 is still "failed", the duplicate changed nothing.
	total, ids, aggs := search(t, c, index, `{
		"query": {"term": {"event": "failed"}},
		"sort": [{"@timestamp": "asc"}],
		"aggs": {"jobs": {"terms": {"field": "job_id"}}}
	}`)
	assert.Equal(t, 2, total)
	assert.Equal(t, []string{"a4", "a6"}, ids)
	assert.Equal(t, map[string]int{"job-2": 1, "job-3": 1}, aggs["jobs"])

	// Terms aggregations over all documents, with exact counts.
	total, _, aggs = search(t, c, index, `{
		"size": 0,
		"aggs": {
			"events": {"terms": {"field": "event"}},
			"queues": {"terms": {"field": "attrs.queue"}}
		}
	}`)
	assert.Equal(t, len(events), total)
	assert.Equal(t, map[string]int{"started": 4, "failed": 2, "succeeded": 1}, aggs["events"])
	assert.Equal(t, map[string]int{"default": 5, "gpu": 2}, aggs["queues"])

	total, ids, _ = search(t, c, index, `{"query": {"bool": {"filter": [
		{"term": {"job_id": "job-3"}},
		{"range": {"duration_ms": {"gte": 10}}}
	]}}}`)
	assert.Equal(t, 1, total)
	assert.Equal(t, []string{"a6"}, ids)
}

// TestCleanupRemovesWhatATestCreated checks estest's own cleanup: after the
// subtest, its index and template must be gone.
func TestCleanupRemovesWhatATestCreated(t *testing.T) {
	c := estest.Require(t)
	var tmpl, index string
	t.Run("creates", func(t *testing.T) {
		tmpl = estest.UniqueName(t, "cleanup")
		index = tmpl + "-explicit"
		estest.PutIndexTemplate(t, c, tmpl, auditTemplate([]string{tmpl + "-*"}, false))
		estest.CreateIndex(t, c, index, `{"settings": {"number_of_replicas": 0}}`)
		res, err := c.Indices.Exists([]string{index})
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode)
	})
	require.NotEmpty(t, index)

	res, err := c.Indices.Exists([]string{index})
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusNotFound, res.StatusCode, "index %s survived cleanup", index)

	res, err = c.Indices.ExistsIndexTemplate(tmpl)
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusNotFound, res.StatusCode, "template %s survived cleanup", tmpl)
}

// TestDataStreamWrites: data streams are created on first write from a
// template with "data_stream": {} even on the test node, and accept only
// `create`.
func TestDataStreamWrites(t *testing.T) {
	c := estest.Require(t)
	ds := estest.UniqueName(t, "logs-audit")
	estest.PutIndexTemplate(t, c, ds, auditTemplate([]string{ds}, true))
	estest.TrackDataStream(t, c, ds)

	base := time.Date(2025, 2, 3, 4, 5, 6, 0, time.UTC)
	items := bulkCreate(t, c, ds, append(append([]auditEvent{}, events[:3]...), events[1]), base)
	require.Len(t, items, 4)
	for i := 0; i < 3; i++ {
		assert.Equal(t, http.StatusCreated, items[i].Status, "item %d: %+v", i, items[i])
		assert.True(t, strings.HasPrefix(items[i].Index, ".ds-"+ds+"-"), items[i].Index)
	}
	assert.Equal(t, http.StatusConflict, items[3].Status, "duplicate _id in data stream: %+v", items[3])

	res, err := c.Indices.Refresh(c.Indices.Refresh.WithIndex(ds))
	okBody(t, res, err)
	total, ids, _ := search(t, c, ds, `{"query": {"term": {"job_id": "job-1"}}, "sort": [{"@timestamp": "asc"}]}`)
	assert.Equal(t, 2, total)
	assert.Equal(t, []string{"a1", "a2"}, ids)
}

type bulkItem struct {
	Index  string `json:"_index"`
	ID     string `json:"_id"`
	Status int    `json:"status"`
	Error  struct {
		Type   string `json:"type"`
		Reason string `json:"reason"`
	} `json:"error"`
}

// bulkCreate sends one _bulk request of `create` actions with explicit _id,
// one second apart from base, and returns the per-item results in order.
func bulkCreate(t *testing.T, c *elasticsearch.Client, index string, evs []auditEvent, base time.Time) []bulkItem {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for i, e := range evs {
		require.NoError(t, enc.Encode(map[string]any{"create": map[string]any{"_index": index, "_id": e.ID}}))
		require.NoError(t, enc.Encode(e.source(base.Add(time.Duration(i)*time.Second))))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := c.Bulk(&buf, c.Bulk.WithContext(ctx))
	body := okBody(t, res, err)
	var out struct {
		Errors bool                  `json:"errors"`
		Items  []map[string]bulkItem `json:"items"`
	}
	require.NoError(t, json.Unmarshal(body, &out), string(body))
	items := make([]bulkItem, 0, len(out.Items))
	for _, it := range out.Items {
		require.Contains(t, it, "create", "bulk item of another action: %v", it)
		items = append(items, it["create"])
	}
	return items
}

// search runs body against index and returns the exact total hit count, the
// hits' _ids in order, and each terms aggregation as key -> doc_count.
func search(t *testing.T, c *elasticsearch.Client, index, body string) (int, []string, map[string]map[string]int) {
	t.Helper()
	res, err := c.Search(
		c.Search.WithIndex(index),
		c.Search.WithBody(strings.NewReader(body)),
		c.Search.WithTrackTotalHits(true),
	)
	b := okBody(t, res, err)
	var out struct {
		Hits struct {
			Total struct {
				Value    int    `json:"value"`
				Relation string `json:"relation"`
			} `json:"total"`
			Hits []struct {
				ID string `json:"_id"`
			} `json:"hits"`
		} `json:"hits"`
		Aggregations map[string]struct {
			SumOtherDocCount int `json:"sum_other_doc_count"`
			Buckets          []struct {
				Key      string `json:"key"`
				DocCount int    `json:"doc_count"`
			} `json:"buckets"`
		} `json:"aggregations"`
	}
	require.NoError(t, json.Unmarshal(b, &out), string(b))
	require.Equal(t, "eq", out.Hits.Total.Relation)
	ids := make([]string, 0, len(out.Hits.Hits))
	for _, h := range out.Hits.Hits {
		ids = append(ids, h.ID)
	}
	aggs := map[string]map[string]int{}
	for name, a := range out.Aggregations {
		require.Zero(t, a.SumOtherDocCount, "aggregation %s has more buckets than returned", name)
		m := map[string]int{}
		for _, bk := range a.Buckets {
			m[bk.Key] = bk.DocCount
		}
		aggs[name] = m
	}
	return out.Hits.Total.Value, ids, aggs
}

// okBody fails the test unless the request returned 2xx, and returns the body.
func okBody(t *testing.T, res *esapi.Response, err error) []byte {
	t.Helper()
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.False(t, res.IsError(), "%s %s", res.Status(), b)
	return b
}
