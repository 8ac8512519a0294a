package storetest

import (
	"sync"

	"github.com/batchaudit/batchaudit/store"
)

// KnownCount counts the run summaries that verification recognised
// without decoding them (Hits) and those it left to the store to decode
// (Misses): a test's store wraps the known function of EachRunSummary
// with Wrap.
type KnownCount struct {
	mu           sync.Mutex
	Hits, Misses int
}

// Wrap returns known, counting its answers.
func (k *KnownCount) Wrap(known func([]byte) *store.Run) func([]byte) *store.Run {
	return func(summary []byte) *store.Run {
		r := known(summary)
		k.mu.Lock()
		defer k.mu.Unlock()
		if r != nil {
			k.Hits++
		} else {
			k.Misses++
		}
		return r
	}
}
