package esstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/storetest"
	"github.com/batchaudit/batchaudit/store/verify"
)

// knownCount counts what verification recognised of the summaries.
type knownCount struct {
	*Store
	storetest.KnownCount
}

func (k *knownCount) EachRunSummary(ctx context.Context, known func([]byte) *store.Run, fn func(*store.Run, []string) error) error {
	return k.Store.EachRunSummary(ctx, k.Wrap(known), fn)
}

// The summaries the collector keeps in Elasticsearch are what verify
// recomputes, byte for byte: none of them needs decoding on an intact
// trail.
func TestRunSummariesRecognised(t *testing.T) {
	s := openWith(t, testConfig(testPrefix(t)))
	for i := range 4 {
		_, err := s.Write(ctx(t), "default", storetest.Stored(storetest.RunEvents(fmt.Sprintf("r%d", i), storetest.T0.Add(time.Duration(i)*time.Hour))...))
		require.NoError(t, err)
	}
	k := &knownCount{Store: s}
	rep, err := verify.Verify(ctx(t), k, verify.Options{})
	require.NoError(t, err)
	assert.Empty(t, rep.Problems)
	assert.Equal(t, 4, rep.Runs)
	assert.Equal(t, 4, k.Hits)
	assert.Zero(t, k.Misses)
}
