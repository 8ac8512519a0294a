package esstore

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/elastic/go-elasticsearch/v8/esapi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/batchaudit/batchaudit/internal/estest"
	"github.com/batchaudit/batchaudit/store"
)

// TestIndexLostIsReinstalled deletes the events index and its template under
// a writer that may install them (the node lost its data): the writer
// reports the vanished history, installs template and index again and
// stores the events in an index with batchaudit's mapping, never in an
// auto-created one.
func TestIndexLostIsReinstalled(t *testing.T) {
	c := estest.Require(t)
	cfg := testConfig(testPrefix(t))
	core, logs := observer.New(zap.WarnLevel)
	s, err := New(ctx(t), cfg, zap.New(core))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	_, err = s.Write(ctx(t), "lost", simpleEvents("b1", 4))
	require.NoError(t, err)

	for _, req := range []esapi.Request{
		esapi.IndicesDeleteRequest{Index: []string{cfg.eventsIndex(), cfg.runsIndex()}},
		esapi.IndicesDeleteIndexTemplateRequest{Name: cfg.eventsIndex()},
	} {
		code, _ := status(t, c, req)
		require.Equal(t, http.StatusOK, code)
	}
	res, err := s.Write(ctx(t), "lost", simpleEvents("b2", 2))
	require.NoError(t, err)
	assert.Equal(t, map[store.Outcome]int{store.Stored: 2}, outcomes(res))
	assert.Equal(t, []int64{5, 6}, []int64{res[0].Sequence, res[1].Sequence})

	alarms := logs.FilterMessageSnippet("integrity alarm: the stored history of this stream vanished").All()
	require.Len(t, alarms, 1)
	assert.Equal(t, int64(4), alarms[0].ContextMap()["last_sequence_written"])
	assert.Equal(t, int64(0), alarms[0].ContextMap()["last_sequence_stored"])
	assert.Len(t, logs.FilterMessageSnippet("installing the templates and indices again").All(), 1)

	problems, notes, err := s.CheckMappings(ctx(t))
	require.NoError(t, err)
	assert.Empty(t, problems, "the events went into an index with batchaudit's mapping")
	assert.Empty(t, notes)
	runs, err := s.Runs(ctx(t), store.RunQuery{})
	require.NoError(t, err)
	require.Len(t, runs, 1, "the runs index came back too")
	assert.Equal(t, "b2", runs[0].BatchID)
	evs, err := s.Events(ctx(t), store.EventQuery{})
	require.NoError(t, err)
	assert.Len(t, evs, 2)
}

// TestUnmappedIndexIsRefused: an index created without the template (by a
// stray write before batchaudit started) gets no write alias, so the store
// refuses to start on it and names the field that is wrong.
func TestUnmappedIndexIsRefused(t *testing.T) {
	c := estest.Require(t)
	cfg := testConfig(testPrefix(t))
	res, err := c.Index(cfg.eventsIndex(), strings.NewReader(`{"event":{"id":"stray","sequence":"x"}}`), c.Index.WithRefresh("true"))
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusCreated, res.StatusCode)

	_, err = New(ctx(t), cfg, nil)
	require.Error(t, err)
	assert.True(t, consumererror.IsPermanent(err), "a configuration problem, not an outage: %v", err)
	// Both stray fields conflict; Elasticsearch names whichever it meets first.
	assert.Regexp(t, `put mapping `+regexp.QuoteMeta(cfg.eventsIndex())+`: HTTP 400: illegal_argument_exception: mapper \[event\.(id|sequence)\] cannot be changed from type \[text\] to \[(keyword|long)\]`, err.Error())
	assert.Contains(t, err.Error(), "was not created by batchaudit; the collector will not write into it")
	code, _ := status(t, c, esapi.IndicesExistsAliasRequest{Name: []string{WriteAlias(cfg.eventsIndex())}})
	assert.Equal(t, http.StatusNotFound, code, "no write alias on an index that is not ours")

	// An index whose mapping merges with ours but has more: refused as well.
	cfg = testConfig(testPrefix(t))
	estest.CreateIndex(t, c, cfg.runsIndex(), `{"mappings":{"properties":{"status":{"type":"keyword","ignore_above":1024},"note":{"type":"text"}}}}`)
	_, err = New(ctx(t), cfg, nil)
	require.Error(t, err)
	assert.True(t, consumererror.IsPermanent(err), "%v", err)
	assert.Contains(t, err.Error(), "index "+cfg.runsIndex()+" exists without batchaudit's mapping, so the collector will not write into it: "+
		"index "+cfg.runsIndex()+": field note is not batchaudit's (added by a mapping update)")
}
