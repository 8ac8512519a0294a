package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/merkle"
)

// MerkleScenario writes one fixed sequence to the stream "default" of a
// fresh location: runs in writes of uneven sizes (so tiles are stored at
// several widths and the tree spans more than one full tile), redeliveries
// (whole and inside one write), conflicts (with the stored event and with
// an earlier event of the same write), dead letters (a rejected event, a
// hash mismatch) and a restart. It returns the store (open) and the tree
// the leaves the results name give, computed here from the input alone:
// entry n is the event or dead letter stored under sequence n, hashed as
// docs/integrity.md says. Backends given the same input must store exactly
// this tree.
func MerkleScenario(t *testing.T, open Opener) (store.Store, tlog.Tree) {
	t.Helper()
	type placed struct {
		seq  int64
		kind merkle.Kind
		hash string
	}
	var leaves []placed
	record := func(in []store.StoredEvent, res []store.Result) {
		for i, r := range res {
			h, err := in[i].Event.Hash()
			require.NoError(t, err)
			switch r.Outcome {
			case store.Stored:
				leaves = append(leaves, placed{r.Sequence, merkle.KindEvent, h})
			case store.DeadLettered, store.Conflict:
				// The document kept is the event's canonical JSON.
				leaves = append(leaves, placed{r.Sequence, merkle.KindDeadLetter, h})
			case store.Duplicate:
			default:
				t.Fatalf("event %s: outcome %v", r.EventID, r.Outcome)
			}
		}
	}
	w := func(s store.Store, in []store.StoredEvent) []store.Result {
		res := write(t, s, "default", in)
		record(in, res)
		return res
	}
	runs := func(from, to int) []store.StoredEvent {
		var out []store.StoredEvent
		for i := from; i < to; i++ {
			out = append(out, Stored(RunEvents(fmt.Sprintf("m%02d", i), T0.Add(time.Duration(i)*time.Hour))...)...)
		}
		return out
	}

	s := open(t)
	all := runs(0, 10) // 170 events
	w(s, all[:3])
	w(s, all[3:120])
	// Redelivered (the first ten), new, and one event twice in one write.
	res := w(s, append(append(slices.Clone(all[:10]), all[120:150]...), all[140]))
	assert.Equal(t, store.Duplicate, res[0].Outcome)
	assert.Equal(t, store.Duplicate, res[len(res)-1].Outcome)
	// A conflict with a stored event, and a conflict inside one write.
	changed := all[5].Event
	changed.RecordID = "changed"
	other := all[151].Event
	other.RecordID = "other"
	res = w(s, append(Stored(changed), all[150], all[151], Stored(other)[0]))
	assert.Equal(t, []store.Outcome{store.Conflict, store.Stored, store.Stored, store.Conflict},
		[]store.Outcome{res[0].Outcome, res[1].Outcome, res[2].Outcome, res[3].Outcome})
	// Dead letters: rejected by the pipeline, and a hash that does not
	// cover the content.
	rejected := Stored(all[152].Event)
	rejected[0].DeadLetterReason = "invalid: batchaudit.record.id: is required"
	mismatch := Stored(all[153].Event)
	mismatch[0].Hash = hex.EncodeToString(make([]byte, 32))
	res = w(s, append(append(rejected, mismatch...), all[154:170]...))
	assert.Equal(t, store.DeadLettered, res[0].Outcome)
	assert.Equal(t, store.DeadLettered, res[1].Outcome)
	require.NoError(t, s.Close())

	// After a restart the tree is loaded from the stored tiles and continues.
	s = open(t)
	more := runs(10, 16) // 102 events: past the first full tile
	w(s, more[:1])
	w(s, append(slices.Clone(all[160:165]), more[1:60]...))
	w(s, more[60:])

	slices.SortFunc(leaves, func(a, b placed) int { return int(a.seq - b.seq) })
	var b merkle.Builder
	for i, l := range leaves {
		require.Equal(t, int64(i+1), l.seq, "the results number the entries gaplessly")
		b.Append(merkle.LeafHash("default", l.seq, l.kind, l.hash))
	}
	require.Greater(t, b.Size(), int64(1<<merkle.TileHeight))
	return s, b.Tree()
}

// testMerkleTree: the tree a store keeps (Tree, its head and tiles) is
// the tree of its entries as EachEntry reads them, and the tree the input
// gives; proofs from its tiles check.
func testMerkleTree(t *testing.T, open Opener) {
	ctx := context.Background()
	s, want := MerkleScenario(t, open)
	defer s.Close()

	tree, err := s.Tree(ctx, "default")
	require.NoError(t, err)
	assert.Equal(t, want, tree, "the stored tree is the tree of the input")

	// The tree of the entries as stored, recomputed from their documents.
	var b merkle.Builder
	var kinds []merkle.Kind
	var leaves []tlog.Hash
	require.NoError(t, s.EachEntry(ctx, "default", func(e *store.StoredEntry) error {
		require.Equal(t, b.Size()+1, e.Sequence)
		sum := sha256.Sum256(e.Document)
		require.Equal(t, hex.EncodeToString(sum[:]), e.Hash, "entry %d: its document hashes to its hash", e.Sequence)
		leaves = append(leaves, merkle.LeafHash("default", e.Sequence, e.Kind, e.Hash))
		b.Append(leaves[len(leaves)-1])
		kinds = append(kinds, e.Kind)
		return nil
	}))
	assert.Equal(t, tree, b.Tree(), "the stored tree is the tree of the stored entries")
	assert.Equal(t, 4, countKind(kinds, merkle.KindDeadLetter))

	// The head and its tiles: every stored hash checks against the root,
	// and proofs from them verify.
	head, err := s.Head(ctx, "default")
	require.NoError(t, err)
	assert.Equal(t, tree.N, head.Size)
	if head.Root != nil {
		assert.Equal(t, tree.Hash, *head.Root)
	}
	r := tlog.TileHashReader(tree, head.Tiles)
	root, err := tlog.TreeHash(tree.N, r)
	require.NoError(t, err)
	assert.Equal(t, tree.Hash, root)
	for idx := int64(0); idx < tree.N; idx += 37 {
		p, err := tlog.ProveRecord(tree.N, idx, r)
		require.NoError(t, err)
		require.NoError(t, tlog.CheckRecord(p, tree.N, tree.Hash, idx, leaves[idx]), "leaf %d", idx)
	}
}

func countKind(kinds []merkle.Kind, k merkle.Kind) int {
	n := 0
	for _, x := range kinds {
		if x == k {
			n++
		}
	}
	return n
}
