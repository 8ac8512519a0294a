package esstore

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchaudit/batchaudit/internal/estest"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/sqlitestore"
	"github.com/batchaudit/batchaudit/store/storetest"
)

// TestConformance holds the Elasticsearch backend to the same store contract
// as SQLite (store/storetest), on a fresh index prefix of the real node per
// subtest; reopening uses the same prefix, like a collector restart.
func TestConformance(t *testing.T) {
	storetest.Conformance(t, func(t *testing.T) storetest.Opener {
		cfg := testConfig(testPrefix(t))
		return func(t *testing.T) store.Store { return openWith(t, cfg) }
	})
}

// TestUnreadableDocuments replaces stored canonical documents on the real
// node by reindexing each under its id (fault injection).
func TestUnreadableDocuments(t *testing.T) {
	cfg := testConfig(testPrefix(t))
	storetest.UnreadableDocuments(t, func(t *testing.T) store.Store { return openWith(t, cfg) },
		func(t *testing.T, s store.Store, eventID string, doc []byte) {
			c := estest.Require(t)
			ref, err := c.Indices.Refresh(c.Indices.Refresh.WithIndex(EventsIndex(cfg.IndexPrefix)))
			require.NoError(t, err)
			ref.Body.Close()
			res, err := c.Search(c.Search.WithIndex(EventsIndex(cfg.IndexPrefix)), c.Search.WithContext(ctx(t)),
				c.Search.WithBody(strings.NewReader(`{"query":{"term":{"event.id":`+strconv.Quote(eventID)+`}}}`)))
			require.NoError(t, err)
			defer res.Body.Close()
			var found struct {
				Hits struct {
					Hits []struct {
						Index  string         `json:"_index"`
						ID     string         `json:"_id"`
						Source map[string]any `json:"_source"`
					} `json:"hits"`
				} `json:"hits"`
			}
			require.NoError(t, json.NewDecoder(res.Body).Decode(&found))
			require.Len(t, found.Hits.Hits, 1)
			h := found.Hits.Hits[0]
			h.Source["batchaudit"].(map[string]any)["canonical"] = string(doc)
			body, err := json.Marshal(h.Source)
			require.NoError(t, err)
			put, err := c.Index(h.Index, bytes.NewReader(body), c.Index.WithDocumentID(h.ID), c.Index.WithRefresh("true"), c.Index.WithContext(ctx(t)))
			require.NoError(t, err)
			defer put.Body.Close()
			require.False(t, put.IsError(), put.String())
		})
}

// TestSameTreeAsSQLite: the same input gives the same Merkle tree (size
// and root) in Elasticsearch and in SQLite, so a checkpoint means the same
// whichever backend kept the trail.
func TestSameTreeAsSQLite(t *testing.T) {
	cfg := testConfig(testPrefix(t))
	es, esTree := storetest.MerkleScenario(t, func(t *testing.T) store.Store { return openWith(t, cfg) })
	defer es.Close()
	path := filepath.Join(t.TempDir(), "audit.db")
	lite, liteTree := storetest.MerkleScenario(t, func(t *testing.T) store.Store {
		s, err := sqlitestore.Open(context.Background(), path)
		require.NoError(t, err)
		return s
	})
	defer lite.Close()
	assert.Equal(t, liteTree, esTree)
	for _, s := range []store.Store{es, lite} {
		tree, err := s.Tree(context.Background(), "default")
		require.NoError(t, err)
		assert.Equal(t, liteTree, tree)
	}
}
