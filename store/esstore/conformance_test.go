package esstore

import (
	"testing"

	"github.com/batchaudit/batchaudit/store"
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
