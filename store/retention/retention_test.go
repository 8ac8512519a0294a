package retention_test

import (
	"context"
	"encoding/hex"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/internal/estest"
	"github.com/batchaudit/batchaudit/signing"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/esstore"
	"github.com/batchaudit/batchaudit/store/merkle"
	"github.com/batchaudit/batchaudit/store/retention"
	"github.com/batchaudit/batchaudit/store/sqlitestore"
	"github.com/batchaudit/batchaudit/store/storetest"
	"github.com/batchaudit/batchaudit/store/verify"
)

// The trails here are written by the real write path (store.Write of each
// backend) and signed with merkle.Checkpoint.Sign, as the exporter does;
// Elasticsearch is the real test node.

type backend struct {
	name string
	open func(t *testing.T) retention.Store
}

var backends = []backend{
	{"sqlite", func(t *testing.T) retention.Store {
		s, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "audit.db"))
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}},
	{"elasticsearch", func(t *testing.T) retention.Store {
		c := estest.Require(t)
		prefix := estest.UniqueName(t, "ret")
		estest.TrackStore(t, c, prefix+"-*", esstore.Indices(prefix)...)
		cfg := esstore.NewDefaultConfig()
		cfg.Endpoints, cfg.IndexPrefix = []string{estest.URL()}, prefix
		cfg.Retry.InitialInterval, cfg.Retry.MaxInterval = 10*time.Millisecond, 200*time.Millisecond
		s, err := esstore.New(ctx(t), cfg, zap.NewNop())
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}},
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

type keys struct {
	signer   note.Signer
	verifier note.Verifier
}

func newKeys(t *testing.T) keys {
	skey, vkey, err := signing.GenerateKey("checkpoints.test")
	require.NoError(t, err)
	s, err := note.NewSigner(skey)
	require.NoError(t, err)
	v, err := note.NewVerifier(vkey)
	require.NoError(t, err)
	return keys{s, v}
}

// trail is a stream written by the write path: run old (17 events) and a
// dead letter at now, run young (17 events) 500 days later.
type trail struct {
	s      retention.Store
	stream string
	now    time.Time
	k      keys
	// published collects the checkpoints as a collector's file would.
	published []verify.External
}

func write(t *testing.T, s retention.Store, stream string, evs ...store.StoredEvent) []store.Result {
	t.Helper()
	res, err := s.Write(ctx(t), stream, evs)
	require.NoError(t, err)
	return res
}

func newTrail(t *testing.T, s retention.Store, stream string) *trail {
	tr := &trail{s: s, stream: stream, now: time.Now().UTC().Truncate(time.Millisecond), k: newKeys(t)}
	write(t, s, stream, storetest.Stored(storetest.RunEvents("old-"+stream, tr.now)...)...)
	bad := storetest.Stored(storetest.RunEvents("dl-"+stream, tr.now)[1])
	bad[0].DeadLetterReason = "invalid batchaudit.record.read: batchaudit.record.id: is required"
	write(t, s, stream, bad...)
	write(t, s, stream, storetest.Stored(storetest.RunEvents("young-"+stream, tr.now.Add(500*24*time.Hour))...)...)
	return tr
}

// sign signs the stream's tree as the exporter does, keeps and publishes it.
func (tr *trail) sign(t *testing.T, final bool) int64 {
	t.Helper()
	tree, err := tr.s.Tree(ctx(t), tr.stream)
	require.NoError(t, err)
	msg, err := merkle.Checkpoint{Origin: verify.DefaultOriginPrefix + tr.stream, Size: tree.N, Root: tree.Hash}.Sign(tr.k.signer)
	require.NoError(t, err)
	require.NoError(t, tr.s.PutCheckpoint(ctx(t), store.StoredCheckpoint{Stream: tr.stream, Size: tree.N,
		Root: hex.EncodeToString(tree.Hash[:]), Note: string(msg), Created: time.Now()}))
	tr.published = append(tr.published, verify.External{Stream: tr.stream, Note: string(msg), Final: final})
	return tree.N
}

func (tr *trail) options(olderThan time.Duration) retention.Options {
	return retention.Options{
		OlderThan: olderThan, Now: tr.now.Add(800 * 24 * time.Hour),
		Signers: []note.Signer{tr.k.signer}, Verifiers: []note.Verifier{tr.k.verifier},
		External: tr.published, Actor: "alice",
		Publish: func(stream string, _ int64, signed []byte, final bool) error {
			tr.published = append(tr.published, verify.External{Stream: stream, Note: string(signed), Final: final})
			return nil
		},
	}
}

func (tr *trail) verify(t *testing.T) *verify.Report {
	t.Helper()
	rep, err := verify.Verify(ctx(t), tr.s, verify.Options{Verifiers: note.VerifierList(tr.k.verifier), External: tr.published})
	require.NoError(t, err)
	return rep
}

func failing(rep *verify.Report) []verify.Problem {
	var out []verify.Problem
	for _, p := range rep.Problems {
		if p.Failing() {
			out = append(out, p)
		}
	}
	return out
}

const day = 24 * time.Hour

func TestRetention(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t)
			tr := newTrail(t, s, "main")

			// Inside the minimum: refused, whatever the trail.
			_, err := retention.Prune(ctx(t), s, "main", tr.options(200*day))
			require.ErrorIs(t, err, retention.ErrRefused)
			assert.Contains(t, err.Error(), "the retention period 200d is inside the minimum retention of 366d")

			// No signed checkpoint covers the old entries yet: refused, naming them.
			_, err = retention.Prune(ctx(t), s, "main", tr.options(400*day))
			require.ErrorIs(t, err, retention.ErrRefused)
			assert.Contains(t, err.Error(), "entries #1..#18 of stream main are older than the cutoff, but no signed checkpoint covers them (the latest covers 0 entries)")

			signed := tr.sign(t, true)
			require.Equal(t, int64(35), signed)

			// A dry run plans and changes nothing.
			opts := tr.options(400 * day)
			opts.DryRun = true
			res, err := retention.Prune(ctx(t), s, "main", opts)
			require.NoError(t, err)
			assert.Equal(t, int64(1), res.From)
			assert.Equal(t, int64(18), res.Through, "the old run and the dead letter")
			assert.Equal(t, int64(18), res.Entries)
			assert.Equal(t, []string{"old-main"}, res.Runs)
			assert.Equal(t, int64(35), res.Checkpoint)
			assert.Contains(t, res.Stop, "entry #19 is from ")
			assert.Empty(t, res.EventID)
			n, err := s.LastSequence(ctx(t), "main")
			require.NoError(t, err)
			assert.Equal(t, int64(35), n)

			res, err = retention.Prune(ctx(t), s, "main", tr.options(400*day))
			require.NoError(t, err)
			assert.Equal(t, int64(18), res.Removed)
			assert.Equal(t, int64(36), res.EventSequence)
			assert.Equal(t, int64(36), res.Signed)

			// Verification passes and reports the pruned range.
			rep := tr.verify(t)
			require.Empty(t, failing(rep), "%+v", rep.Problems)
			require.Len(t, rep.Streams, 1)
			sum := rep.Streams[0]
			assert.Equal(t, int64(18), sum.Entries, "the entries stored")
			assert.Equal(t, int64(36), sum.Size, "the tree: pruned places included")
			assert.Equal(t, int64(18), sum.Events, "the young run and the retention event")
			assert.Equal(t, int64(0), sum.DeadLetters)
			assert.Equal(t, int64(36), sum.Covered)
			require.NotNil(t, sum.Pruned)
			assert.Equal(t, verify.Pruned{Through: 18, Sequence: 36, EventID: res.EventID, Cutoff: res.Cutoff.Format(time.RFC3339Nano)}, *sum.Pruned)
			assert.Equal(t, 1, rep.Runs, "the old run's summary went with its events")

			// The retention event is in the trail, with what it did.
			evs, err := s.Events(ctx(t), store.EventQuery{Names: []string{auditevent.RetentionPrune}})
			require.NoError(t, err)
			require.Len(t, evs, 1)
			r := evs[0].Retention
			assert.Equal(t, int64(1), *r.FromSequence)
			assert.Equal(t, int64(18), *r.ThroughSequence)
			assert.Equal(t, int64(18), *r.Entries)
			assert.Equal(t, int64(1), *r.Runs)
			assert.Equal(t, int64(35), *r.CheckpointSize)
			assert.Equal(t, "400d", r.Period)
			assert.Equal(t, "366d", r.Minimum)
			assert.Equal(t, "alice", evs[0].Actor.ID)
			runs, err := s.Runs(ctx(t), store.RunQuery{})
			require.NoError(t, err)
			require.Len(t, runs, 1)
			assert.Equal(t, "young-main", runs[0].BatchID)

			// Proofs of the remaining entries hold, against the new checkpoint
			// and the one signed before the prune.
			proveAndCheck(t, tr, storetest.RunEvents("young-main", tr.now.Add(500*day))[3].ID)
			proveAndCheck(t, tr, res.EventID)

			// A second run has nothing left to remove.
			again, err := retention.Prune(ctx(t), s, "main", tr.options(400*day))
			require.NoError(t, err)
			assert.Zero(t, again.From)
			assert.Equal(t, int64(18), again.AlreadyPruned)
			assert.Contains(t, again.Stop, "entry #19 is from ")

			// A collector writing on after the prune: its next entries follow
			// the retention event, and everything still verifies.
			write(t, s, "main", storetest.Stored(storetest.RunEvents("later-main", tr.now.Add(600*day))...)...)
			tr.sign(t, false)
			rep = tr.verify(t)
			require.Empty(t, failing(rep), "%+v", rep.Problems)
			assert.Equal(t, int64(18), rep.Streams[0].Pruned.Through)
		})
	}
}

// proveAndCheck builds the proof bundle of an event from the latest kept
// checkpoint (as batchaudit prove does), with a consistency proof from the
// first, and verifies it offline.
func proveAndCheck(t *testing.T, tr *trail, eventID string) {
	t.Helper()
	e, err := tr.s.EntryOf(ctx(t), eventID)
	require.NoError(t, err)
	require.NotNil(t, e)
	cps, err := tr.s.Checkpoints(ctx(t), tr.stream)
	require.NoError(t, err)
	latest, first := cps[len(cps)-1], cps[0]
	cp, err := merkle.ParseBody(merkle.Text(latest.Note))
	require.NoError(t, err)
	head, err := tr.s.Head(ctx(t), tr.stream)
	require.NoError(t, err)
	r := tlog.TileHashReader(cp.Tree(), head.Tiles)
	incl, err := tlog.ProveRecord(cp.Size, e.Sequence-1, r)
	require.NoError(t, err)
	cons, err := tlog.ProveTree(cp.Size, first.Size, r)
	require.NoError(t, err)
	b := merkle.Bundle{Format: merkle.BundleFormat, Stream: e.Stream, Sequence: e.Sequence, Kind: e.Kind, Document: string(e.Document),
		Hash: e.Hash, Checkpoint: latest.Note, Inclusion: merkle.Hashes(incl),
		Consistency: &merkle.ConsistencyProof{From: first.Note, Proof: merkle.Hashes(cons)}}
	v, err := merkle.VerifyBundle(&b, note.VerifierList(tr.k.verifier), verify.DefaultOriginPrefix)
	require.NoError(t, err)
	assert.Equal(t, first.Size, v.From.Size)
}

// TestUnrecordedPruneIsMissing: entries removed without a retention event
// (by hand), or with one that no signed checkpoint covers, are missing.
func TestUnrecordedPruneIsMissing(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t)
			tr := newTrail(t, s, "hand")
			tr.sign(t, false)
			// By hand: the backend's delete, without the event.
			n, err := s.Prune(ctx(t), "hand", 5, nil)
			require.NoError(t, err)
			require.Equal(t, int64(5), n)
			rep := tr.verify(t)
			assert.Nil(t, rep.Streams[0].Pruned)
			var missing []int64
			for _, p := range failing(rep) {
				if p.Kind == verify.Missing {
					missing = append(missing, p.Sequence)
					assert.Equal(t, "no entry holds this sequence", p.Detail)
				}
			}
			assert.Equal(t, []int64{1, 2, 3, 4, 5}, missing)
			// Nothing else: the leaves came from the tiles, so the tree still
			// gives the signed root (the run summary no longer matches).
			for _, p := range failing(rep) {
				assert.Contains(t, []string{verify.Missing, verify.RunSummaryDiffers}, p.Kind, p.Detail)
			}

			// A retention event written into the stream but never signed does
			// not explain the prefix.
			tr2 := newTrail(t, s, "unsigned")
			tr2.sign(t, false)
			ev := auditevent.Event{ID: auditevent.NewID(), Name: auditevent.RetentionPrune, Time: tr2.now,
				Retention: auditevent.Retention{FromSequence: ptr(1), ThroughSequence: ptr(18), Entries: ptr(18), CheckpointSize: ptr(35), Cutoff: "x"}}
			require.NoError(t, ev.Validate())
			res := write(t, s, "unsigned", storetest.Stored(ev)...)
			require.Equal(t, store.Stored, res[0].Outcome)
			_, err = s.Prune(ctx(t), "unsigned", 18, []string{"old-unsigned"})
			require.NoError(t, err)
			rep = tr2.verify(t)
			require.NotEmpty(t, failing(rep))
			for _, p := range failing(rep) {
				if p.Stream == "unsigned" {
					assert.Equal(t, verify.Missing, p.Kind)
					assert.Contains(t, p.Detail, "the retention event at #36 that records a prune is not covered by a signed checkpoint")
				}
			}
			// Once signed, it does.
			tr2.sign(t, false)
			rep, err = verify.Verify(ctx(t), s, verify.Options{Verifiers: note.VerifierList(tr2.k.verifier), External: tr2.published, Streams: []string{"unsigned"}})
			require.NoError(t, err)
			assert.Empty(t, failing(rep))
			assert.Equal(t, int64(18), rep.Streams[0].Pruned.Through)
		})
	}
}

func ptr(v int64) *int64 { return &v }

// TestRunsArePrunedWhole: a run with events on both sides of the cutoff
// keeps pruning from reaching it.
func TestRunsArePrunedWhole(t *testing.T) {
	s := backends[0].open(t)
	tr := &trail{s: s, stream: "runs", now: time.Now().UTC().Truncate(time.Millisecond), k: newKeys(t)}
	write(t, s, "runs", storetest.Stored(storetest.RunEvents("r1", tr.now)...)...)
	r2 := storetest.RunEvents("r2", tr.now)
	r2[len(r2)-1].Time = tr.now.Add(700 * day) // it ends long after it started
	write(t, s, "runs", storetest.Stored(r2...)...)
	tr.sign(t, false)
	opts := tr.options(400 * day)
	res, err := retention.Prune(ctx(t), s, "runs", opts)
	require.NoError(t, err)
	assert.Equal(t, int64(17), res.Through)
	assert.Equal(t, []string{"r1"}, res.Runs)
	assert.Equal(t, "run r2 starts at #18 and has events up to #34: a run is removed whole or not at all", res.Stop)
	assert.Empty(t, failing(tr.verify(t)))
}

// TestSQLiteCollectorWritesOn: a collector with the stream open (its tree
// in memory) while retention writes into the same SQLite file: its next
// write fails once on the taken sequence, it reloads, and the retry lands
// after the retention event.
func TestSQLiteCollectorWritesOn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	collector, err := sqlitestore.Open(ctx(t), path)
	require.NoError(t, err)
	defer collector.Close()
	tr := newTrail(t, collector, "c")
	tr.sign(t, false)
	admin, err := sqlitestore.Open(ctx(t), path)
	require.NoError(t, err)
	defer admin.Close()
	tr.s = admin
	_, err = retention.Prune(ctx(t), admin, "c", tr.options(400*day))
	require.NoError(t, err)
	next := storetest.Stored(storetest.RunEvents("next", tr.now.Add(700*day))...)
	_, err = collector.Write(ctx(t), "c", next)
	require.Error(t, err, "the collector's stale tree numbers the retention event's place")
	res, err := collector.Write(ctx(t), "c", next)
	require.NoError(t, err)
	assert.Equal(t, int64(37), res[0].Sequence)
	tr.s = collector
	tr.sign(t, false)
	rep := tr.verify(t)
	assert.Empty(t, failing(rep))
	assert.Equal(t, int64(18), rep.Streams[0].Pruned.Through)
}

// TestOneWriterBackendNeedsAStoppedCollector: on Elasticsearch the
// retention event is written only when no collector writes the stream.
func TestOneWriterBackendNeedsAStoppedCollector(t *testing.T) {
	s := backends[1].open(t)
	tr := newTrail(t, s, "w")
	tr.sign(t, false)
	_, err := retention.Prune(ctx(t), s, "w", tr.options(400*day))
	require.ErrorIs(t, err, retention.ErrRefused)
	assert.Contains(t, err.Error(), "stop the collector that writes it first (its final checkpoint, published in the checkpoint file, then covers all 35 entries; "+
		"the latest published checkpoint has size 35 and is not final), or state that it is stopped (--collector-stopped)")
	tr.sign(t, true) // the clean stop's final checkpoint
	res, err := retention.Prune(ctx(t), s, "w", tr.options(400*day))
	require.NoError(t, err)
	assert.Equal(t, int64(18), res.Removed)
	last := tr.published[len(tr.published)-1]
	assert.True(t, last.Final, "the retention checkpoint is final in turn: no collector runs")
	rep := tr.verify(t)
	assert.Empty(t, failing(rep))
}

// TestPrunedLeavesAreChecked: the leaves of the pruned prefix come from the
// tiles, and the signed checkpoints check them: a tile altered there is a
// tree mismatch, not a silent pass.
func TestPrunedLeavesAreChecked(t *testing.T) {
	s := backends[0].open(t).(*sqlitestore.Store)
	tr := newTrail(t, s, "main")
	tr.sign(t, false)
	_, err := retention.Prune(ctx(t), s, "main", tr.options(400*day))
	require.NoError(t, err)
	require.Empty(t, failing(tr.verify(t)))
	// Flip a byte of leaf 3 (entry #4, pruned) in the level-0 tile.
	r, err := s.DB().Exec(`UPDATE tiles SET data = substr(data, 1, 96) || x'ff' || substr(data, 98) WHERE stream = 'main' AND level = 0 AND idx = 0`)
	require.NoError(t, err)
	n, _ := r.RowsAffected()
	require.Equal(t, int64(1), n)
	kinds := map[string][]int64{}
	for _, p := range failing(tr.verify(t)) {
		kinds[p.Kind] = append(kinds[p.Kind], p.Sequence)
	}
	assert.Equal(t, []int64{35, 36}, kinds[verify.TreeMismatch], "both signed checkpoints cover the altered leaf")
}
