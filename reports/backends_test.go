package reports

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/batchaudit/batchaudit/internal/estest"
	"github.com/batchaudit/batchaudit/store/esstore"
)

// esFixture writes the crafted trail into a fresh index prefix of the real
// Elasticsearch node; indices and templates are removed at cleanup.
func esFixture(t *testing.T) *esstore.Store {
	t.Helper()
	c := estest.Require(t)
	prefix := estest.UniqueName(t, "rep")
	estest.TrackStore(t, c, prefix+"-*", esstore.Indices(prefix)...)
	cfg := esstore.NewDefaultConfig()
	cfg.Endpoints, cfg.IndexPrefix = []string{estest.URL()}, prefix
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := esstore.New(ctx, cfg, zap.NewNop())
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	writeFixture(t, s)
	return s
}

// TestSameReportFromSQLiteAndElasticsearch: the same trail in both
// backends gives every report with the same content hash.
func TestSameReportFromSQLiteAndElasticsearch(t *testing.T) {
	lite := newGenerator(sqliteFixture(t), "sqlite:test")
	es := newGenerator(esFixture(t), "elasticsearch:test")
	for _, req := range fixtureRequests() {
		rl, err := lite.Generate(context.Background(), req)
		require.NoError(t, err)
		re, err := es.Generate(context.Background(), req)
		require.NoError(t, err)
		_, err = rl.encode()
		require.NoError(t, err)
		_, err = re.encode()
		require.NoError(t, err)
		if !assert.Equal(t, rl.Envelope.ContentSHA256, re.Envelope.ContentSHA256, "%s %s", req.Kind, req.Filters.String()) {
			assert.Equal(t, rl.Text(), re.Text())
			assert.Equal(t, rl.Queries, re.Queries)
		}
	}
}
