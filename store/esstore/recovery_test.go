package esstore

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/merkle"
)

// recomputed is the tree the stored entries of a stream give.
func recomputed(t *testing.T, s *Store, stream string) (tlog.Tree, []*store.StoredEntry) {
	t.Helper()
	var b merkle.Builder
	var entries []*store.StoredEntry
	require.NoError(t, s.EachEntry(ctx(t), stream, func(e *store.StoredEntry) error {
		require.Equal(t, b.Size()+1, e.Sequence, "entries are numbered 1..N")
		b.Append(merkle.LeafHash(stream, e.Sequence, e.Kind, e.Hash))
		entries = append(entries, e)
		return nil
	}))
	return b.Tree(), entries
}

// A write whose middle item was never stored and whose tiles were not
// written (the process died after the bulk): the next load adopts what is
// stored, fills the hole with a gap, and the tree covers 1..N again.
func TestCrashedWriteIsAdoptedWithGaps(t *testing.T) {
	s, p, cfg := proxied(t, func(c *Config) { c.Retry.MaxAttempts = 1 })
	_, err := s.Write(ctx(t), "main", simpleEvents("b-before", 3))
	require.NoError(t, err)
	// The next bulk loses its third item (answered 503, never stored: it
	// is numbered but missing), and every later request fails: the write
	// dies before its tiles, as if the process had.
	in := simpleEvents("b-crash", 4)
	p.mu.Lock()
	p.dropNth = 3
	p.rewrite = func(n int, resp []byte) []byte {
		p.mu.Lock()
		p.all = http.StatusServiceUnavailable
		p.mu.Unlock()
		return resp
	}
	p.mu.Unlock()
	_, err = s.Write(ctx(t), "main", in)
	require.Error(t, err)
	require.NoError(t, s.Close())

	// A new process loads the stream.
	p.mu.Lock()
	p.rewrite, p.dropNth, p.all = nil, 0, 0
	p.mu.Unlock()
	s2 := openWith(t, cfg)
	tree, err := s2.Tree(ctx(t), "main")
	require.NoError(t, err)
	want, entries := recomputed(t, s2, "main")
	assert.Equal(t, want, tree, "the stored tree covers every stored entry")
	require.Len(t, entries, 7)
	assert.Equal(t, merkle.KindGap, entries[5].Kind, "the number the lost item took is a gap")
	assert.Contains(t, string(entries[5].Document), "interrupted")
	// The retried write: three of its events are stored, one is new.
	res, err := s2.Write(ctx(t), "main", in)
	require.NoError(t, err)
	var outcomes []string
	for _, r := range res {
		outcomes = append(outcomes, fmt.Sprintf("%s@%d", r.Outcome, r.Sequence))
	}
	assert.Equal(t, []string{"duplicate@4", "duplicate@5", "stored@8", "duplicate@7"}, outcomes)
	runs, err := s2.Runs(ctx(t), store.RunQuery{})
	require.NoError(t, err)
	for _, r := range runs {
		if r.BatchID == "b-crash" {
			assert.Equal(t, int64(4), r.Events, "every event folded into its run once")
		}
	}
}

// A redelivery older than the writer's window is created, meets a 409 and
// is resolved then: a duplicate of the stored event, its number a gap.
func TestLateRedeliveryLeavesAGap(t *testing.T) {
	s, cfg := openStore(t, func(c *Config) { c.DedupeWindow = 1 })
	in := simpleEvents("b-late", 2200)
	_, err := s.Write(ctx(t), "main", in)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	// A new process remembers only the newest keys.
	s2 := openWith(t, cfg)
	res, err := s2.Write(ctx(t), "main", in[:1])
	require.NoError(t, err)
	assert.Equal(t, store.Duplicate, res[0].Outcome)
	assert.Equal(t, int64(1), res[0].Sequence, "the stored copy stands")
	want, entries := recomputed(t, s2, "main")
	tree, err := s2.Tree(ctx(t), "main")
	require.NoError(t, err)
	assert.Equal(t, want, tree)
	last := entries[len(entries)-1]
	assert.Equal(t, merkle.KindGap, last.Kind)
	assert.True(t, strings.Contains(string(last.Document), "redelivery of "+in[0].ID), "%s", last.Document)
	dls, err := s2.DeadLetters(ctx(t), time.Time{}, time.Time{}, 0)
	require.NoError(t, err)
	require.Len(t, dls, 1)
	assert.Equal(t, merkle.KindGap, dls[0].Kind, "listed with the dead letters, as a gap")
	assert.Equal(t, last.Sequence, dls[0].Sequence)
	counts, err := s2.CountDeadLetters(ctx(t), time.Time{}, time.Time{})
	require.NoError(t, err)
	assert.Equal(t, []store.DeadLetterCount{{Stream: "main", Gaps: 1}}, counts, "a gap is no refused event")
}
