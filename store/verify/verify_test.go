package verify_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"

	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/merkle"
	"github.com/batchaudit/batchaudit/store/sqlitestore"
	"github.com/batchaudit/batchaudit/store/storetest"
	"github.com/batchaudit/batchaudit/store/verify"
)

// A small signed trail on SQLite, altered in SQL, each alteration on a
// fresh trail. (testbed's tamper suite does this at scale, on trails the
// built collector wrote, on both backends.)
type signed struct {
	s         *sqlitestore.Store
	db        *sql.DB
	verifiers note.Verifiers
	external  []verify.External
}

// newSigned writes runs of 17 events in writes of uneven sizes (300+
// entries, two tiles) and signs a checkpoint after some writes and at
// the end (final).
func newSigned(t *testing.T) *signed {
	ctx := context.Background()
	s, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "audit.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	sk, vk, err := note.GenerateKey(rand.Reader, "audit.example/verify")
	require.NoError(t, err)
	signer, err := note.NewSigner(sk)
	require.NoError(t, err)
	v, err := note.NewVerifier(vk)
	require.NoError(t, err)
	sg := &signed{s: s, db: s.DB(), verifiers: note.VerifierList(v)}
	sign := func(final bool) {
		tree, err := s.Tree(ctx, "default")
		require.NoError(t, err)
		msg, err := merkle.Checkpoint{Origin: "batchaudit/default", Size: tree.N, Root: tree.Hash}.Sign(signer)
		require.NoError(t, err)
		require.NoError(t, s.PutCheckpoint(ctx, store.StoredCheckpoint{Stream: "default", Size: tree.N,
			Root: hex.EncodeToString(tree.Hash[:]), Note: string(msg), Created: time.Now()}))
		sg.external = append(sg.external, verify.External{Stream: "default", Note: string(msg), Final: final})
	}
	var all []store.StoredEvent
	for i := range 18 {
		all = append(all, storetest.Stored(storetest.RunEvents(fmt.Sprintf("v%02d", i), storetest.T0.Add(time.Duration(i)*time.Hour))...)...)
	}
	for i, n := 0, 1; i < len(all); i, n = i+n, n*2+3 {
		_, err := s.Write(ctx, "default", all[i:min(i+n, len(all))])
		require.NoError(t, err)
		if n > 20 {
			sign(false)
		}
	}
	sign(true)
	return sg
}

func (sg *signed) verify(t *testing.T) *verify.Report {
	rep, err := verify.Verify(context.Background(), sg.s, verify.Options{Verifiers: sg.verifiers, External: sg.external})
	require.NoError(t, err)
	return rep
}

func (sg *signed) exec(t *testing.T, q string, args ...any) {
	_, err := sg.db.Exec(q, args...)
	require.NoError(t, err, q)
}

// renumber moves the entries at from or later by delta.
func (sg *signed) renumber(t *testing.T, from, delta int64) {
	for _, tb := range []string{"events", "dead_letters"} {
		sg.exec(t, `UPDATE `+tb+` SET sequence = -(sequence + ?) WHERE sequence >= ?`, delta, from)
		sg.exec(t, `UPDATE `+tb+` SET sequence = -sequence WHERE sequence < 0`)
	}
}

type found struct {
	kind string
	seq  int64
}

func kinds(rep *verify.Report) map[found]bool {
	out := map[found]bool{}
	for _, p := range rep.Problems {
		out[found{p.Kind, p.Sequence}] = true
	}
	return out
}

func TestIntactTrail(t *testing.T) {
	sg := newSigned(t)
	rep := sg.verify(t)
	assert.True(t, rep.OK())
	assert.Empty(t, rep.Problems)
	require.Len(t, rep.Streams, 1)
	assert.Equal(t, int64(306), rep.Streams[0].Entries)
	assert.Equal(t, rep.Streams[0].Entries, rep.Streams[0].Covered)
}

func TestTamperingsNamed(t *testing.T) {
	const n = 306
	for name, c := range map[string]struct {
		tamper func(t *testing.T, sg *signed)
		want   []found
	}{
		"swapped far apart": {func(t *testing.T, sg *signed) {
			sg.exec(t, `UPDATE events SET sequence = -sequence WHERE sequence IN (20, 290)`)
			sg.exec(t, `UPDATE events SET sequence = CASE sequence WHEN -20 THEN 290 ELSE 20 END WHERE sequence < 0`)
		}, []found{{verify.Reordered, 20}, {verify.Reordered, 290}}},
		"deleted, later entries renumbered": {func(t *testing.T, sg *signed) {
			sg.exec(t, `DELETE FROM events WHERE sequence = 100`)
			sg.renumber(t, 101, -1)
		}, []found{{verify.Missing, 100}, {verify.Reordered, 100}, {verify.Reordered, n - 1}}},
		"deleted, not renumbered": {func(t *testing.T, sg *signed) {
			sg.exec(t, `DELETE FROM events WHERE sequence = 100`)
		}, []found{{verify.Missing, 100}}},
		"inserted, later entries renumbered": {func(t *testing.T, sg *signed) {
			sg.renumber(t, 50, 1)
			sg.exec(t, `INSERT INTO events SELECT 'forged', stream, 50, hash, document, ingested, name, time, batch_id, record_id,
				source_name, source, target_name, target, change_type, actor_id, lineage_id, finding_type FROM events WHERE sequence = 12`)
		}, []found{{verify.Inserted, 50}, {verify.Reordered, 51}, {verify.Reordered, n + 1}}},
		"payload and hash changed, counter raised": {func(t *testing.T, sg *signed) {
			var doc string
			require.NoError(t, sg.db.QueryRow(`SELECT document FROM events WHERE sequence = 291`).Scan(&doc))
			changed := strings.Replace(doc, `"A-1"`, `"A-7"`, 1)
			require.NotEqual(t, doc, changed)
			sum := sha256.Sum256([]byte(changed))
			sg.exec(t, `UPDATE events SET document = ?, hash = ? WHERE sequence = 291`, changed, hex.EncodeToString(sum[:]))
			sg.exec(t, `UPDATE streams SET last_sequence = last_sequence + 3`)
		}, []found{{verify.Modified, 291}, {verify.HeadDiffers, n + 3}}},
		"tail cut, counter and root lowered": {func(t *testing.T, sg *signed) {
			sg.exec(t, `DELETE FROM events WHERE sequence > 290`)
			sg.exec(t, `UPDATE streams SET last_sequence = 290, tree_root = ''`)
		}, []found{{verify.Truncated, 290}}},
		"event id column": {func(t *testing.T, sg *signed) {
			sg.exec(t, `UPDATE events SET id = 'other' WHERE sequence = 7`)
		}, []found{{verify.IndexedDiffers, 7}}},
		"run status column": {func(t *testing.T, sg *signed) {
			sg.exec(t, `UPDATE runs SET status = 'failure' WHERE batch_id = 'v03'`)
		}, []found{{verify.RunSummaryDiffers, 0}}},
	} {
		t.Run(name, func(t *testing.T) {
			sg := newSigned(t)
			c.tamper(t, sg)
			rep := sg.verify(t)
			assert.False(t, rep.OK())
			got := kinds(rep)
			for _, w := range c.want {
				assert.True(t, got[w], "want %s at %d; got %+v", w.kind, w.seq, rep.Problems)
			}
		})
	}
}

// headAt reports a smaller stored tree on its first Head calls, as a
// store does while a write is committing (or after one a crash cut short).
type headAt struct {
	*sqlitestore.Store
	size        int64
	uncommitted bool
	stale       int // how many Head calls see size
}

func (h *headAt) Head(ctx context.Context, stream string) (store.Head, error) {
	hd, err := h.Store.Head(ctx, stream)
	if h.stale > 0 {
		h.stale--
		hd.Size, hd.Root, hd.Uncommitted = h.size, nil, h.uncommitted
	}
	return hd, err
}

func TestEntriesAfterTheStoredTree(t *testing.T) {
	sg := newSigned(t)
	run := func(h *headAt) *verify.Report {
		rep, err := verify.Verify(context.Background(), h, verify.Options{Verifiers: sg.verifiers, External: sg.external})
		require.NoError(t, err)
		return rep
	}
	// Committed while verification read the entries: nothing to say.
	rep := run(&headAt{Store: sg.s, size: 300, stale: 1})
	assert.True(t, rep.OK())
	assert.Empty(t, rep.Problems)

	// A backend without transactions: a write not committed yet is a note.
	rep = run(&headAt{Store: sg.s, size: 300, uncommitted: true, stale: 2})
	assert.True(t, rep.OK(), "%v", rep.Problems)
	assert.Equal(t, map[found]bool{{verify.Pending, 301}: true}, kinds(rep))

	// A transactional one cannot hold entries its head does not count.
	rep = run(&headAt{Store: sg.s, size: 300, stale: 2})
	assert.False(t, rep.OK())
	assert.True(t, kinds(rep)[found{verify.HeadDiffers, 300}], "%v", rep.Problems)
}

// writesDuring is the SQLite store with a collector writing to run v17 after
// verification read the stream and before it reads the run summaries
// (fault injection: the timing a live trail gives by chance).
type writesDuring struct {
	*sqlitestore.Store
	t *testing.T
}

func (w writesDuring) EachRunSummary(ctx context.Context, known func([]byte) *store.Run, fn func(*store.Run, []string) error) error {
	_, err := w.Write(ctx, "default", storetest.Stored(storetest.ProgressEvent("v17", storetest.T0.Add(17*time.Hour+time.Minute))))
	require.NoError(w.t, err)
	return w.Store.EachRunSummary(ctx, known, fn)
}

func TestRunWrittenDuringVerification(t *testing.T) {
	sg := newSigned(t)
	rep, err := verify.Verify(context.Background(), writesDuring{sg.s, t}, verify.Options{Verifiers: sg.verifiers, External: sg.external[:len(sg.external)-1]})
	require.NoError(t, err)
	assert.True(t, rep.OK(), "a run written while it was verified is no alarm: %v", rep.Problems)
	assert.Equal(t, map[found]bool{{verify.RunNotCompared, 307}: true}, kinds(rep))
	assert.Equal(t, 18, rep.Runs)

	// Verified again, the run is compared.
	rep, err = verify.Verify(context.Background(), sg.s, verify.Options{Verifiers: sg.verifiers, External: sg.external[:len(sg.external)-1]})
	require.NoError(t, err)
	assert.True(t, rep.OK(), "%v", rep.Problems)
	assert.Equal(t, map[found]bool{{verify.Unsigned, 307}: true}, kinds(rep))

	// A summary claiming events the stream does not hold is no race.
	sg.exec(t, `UPDATE runs SET summary = json_set(summary, '$.through.default', 400, '$.events', 99) WHERE batch_id = 'v03'`)
	rep, err = verify.Verify(context.Background(), sg.s, verify.Options{Verifiers: sg.verifiers, External: sg.external[:len(sg.external)-1]})
	require.NoError(t, err)
	assert.False(t, rep.OK())
	assert.True(t, kinds(rep)[found{verify.RunSummaryDiffers, 400}], "%v", rep.Problems)
}

// knownCount counts what verification recognised of the summaries.
type knownCount struct {
	*sqlitestore.Store
	storetest.KnownCount
}

func (k *knownCount) EachRunSummary(ctx context.Context, known func([]byte) *store.Run, fn func(*store.Run, []string) error) error {
	return k.Store.EachRunSummary(ctx, k.Wrap(known), fn)
}

// An intact trail's summaries are recognised without decoding; one that
// differs from its events is decoded and reported as before.
func TestRunSummariesRecognised(t *testing.T) {
	sg := newSigned(t)
	k := &knownCount{Store: sg.s}
	rep, err := verify.Verify(context.Background(), k, verify.Options{Verifiers: sg.verifiers, External: sg.external})
	require.NoError(t, err)
	assert.Empty(t, rep.Problems)
	assert.Equal(t, 18, k.Hits)
	assert.Zero(t, k.Misses)

	sg.exec(t, `UPDATE runs SET summary = json_set(summary, '$.deleted', 9) WHERE batch_id = 'v03'`)
	k = &knownCount{Store: sg.s}
	rep, err = verify.Verify(context.Background(), k, verify.Options{Verifiers: sg.verifiers, External: sg.external})
	require.NoError(t, err)
	assert.Equal(t, 17, k.Hits)
	assert.Equal(t, 1, k.Misses)
	require.Len(t, rep.Problems, 1)
	assert.Equal(t, verify.RunSummaryDiffers, rep.Problems[0].Kind)
	assert.Contains(t, rep.Problems[0].Detail, "run v03: deleted is 9")
}
