package sqlitestore

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/canonical"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/merkle"
	"github.com/batchaudit/batchaudit/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Conformance(t, func(t *testing.T) storetest.Opener {
		path := filepath.Join(t.TempDir(), "sub", "audit.db") // the directory is created
		return func(t *testing.T) store.Store {
			s, err := Open(context.Background(), path)
			require.NoError(t, err)
			return s
		}
	})
}

// TestUnreadableDocuments corrupts documents with SQL (fault injection).
func TestUnreadableDocuments(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	storetest.UnreadableDocuments(t, func(t *testing.T) store.Store {
		s, err := Open(context.Background(), path)
		require.NoError(t, err)
		return s
	}, func(t *testing.T, s store.Store, eventID string, doc []byte) {
		res, err := s.(*Store).db.Exec(`UPDATE events SET document = ? WHERE id = ?`, doc, eventID)
		require.NoError(t, err)
		n, err := res.RowsAffected()
		require.NoError(t, err)
		require.Equal(t, int64(1), n)
	})
}

// TestUpgradeWithUnreadableDocument: a trail of schema 2 (no Merkle tree)
// holding a document nested too deeply to parse, as OTLP events could be
// stored before the receiver limited nesting, still loads (the tree is built
// over it), takes new writes, and reads back with the document Unreadable.
func TestUpgradeWithUnreadableDocument(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.db")
	s, err := Open(ctx, path)
	require.NoError(t, err)
	events := storetest.RunEvents("b1", storetest.T0)
	_, err = s.Write(ctx, "default", storetest.Stored(events...))
	require.NoError(t, err)
	deep := storetest.DeepDocument(events[3].Time.Format(time.RFC3339Nano))
	for _, stmt := range []string{
		`ALTER TABLE streams DROP COLUMN tree_root`,
		`ALTER TABLE dead_letters DROP COLUMN kind`, `DROP TABLE tiles`, `DROP TABLE checkpoints`,
		`PRAGMA user_version = 2`,
	} {
		_, err := s.DB().Exec(stmt)
		require.NoError(t, err, stmt)
	}
	_, err = s.DB().Exec(`UPDATE events SET document = ?, hash = ? WHERE id = ?`, deep, canonical.HashBytes(deep), events[3].ID)
	require.NoError(t, err)
	require.NoError(t, s.Close())

	s, err = Open(ctx, path)
	require.NoError(t, err)
	defer s.Close()
	more := storetest.RunEvents("b2", storetest.T0.Add(time.Hour))
	res, err := s.Write(ctx, "default", storetest.Stored(more...))
	require.NoError(t, err, "the stream loads over the unreadable document")
	assert.Equal(t, int64(len(events)+1), res[0].Sequence)
	got, err := s.Events(ctx, store.EventQuery{})
	require.NoError(t, err)
	require.Len(t, got, len(events)+len(more))
	assert.Equal(t, events[3].ID, got[3].ID)
	assert.Contains(t, got[3].Unreadable, "exceeded max depth")
	assert.Empty(t, got[4].Unreadable)
}

func TestMemory(t *testing.T) {
	s, err := Open(context.Background(), Memory)
	require.NoError(t, err)
	defer s.Close()
	res, err := s.Write(context.Background(), "default", storetest.Stored(storetest.RunEvents("b1", storetest.T0)...))
	require.NoError(t, err)
	assert.Len(t, res, 17)
	n, err := s.LastSequence(context.Background(), "default")
	require.NoError(t, err)
	assert.Equal(t, int64(17), n)
}

func TestUnencodableAndInconsistentEvents(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Memory)
	require.NoError(t, err)
	defer s.Close()
	events := storetest.RunEvents("b1", storetest.T0)
	nan := events[1]
	nan.RecordData = map[string]any{"amount": math.NaN()}
	noID := events[2]
	noID.ID = ""
	wrongHash := storetest.Stored(events[3])[0]
	wrongHash.Hash = "0000"
	noHash := store.StoredEvent{Event: events[4]}
	in := []store.StoredEvent{{Event: nan}, storetest.Stored(noID)[0], wrongHash, noHash}
	res, err := s.Write(ctx, "default", in)
	require.NoError(t, err)
	assert.Equal(t, store.DeadLettered, res[0].Outcome)
	assert.Contains(t, res[0].Reason, "cannot be encoded as canonical JSON")
	assert.Equal(t, store.DeadLettered, res[1].Outcome)
	assert.Contains(t, res[1].Reason, "event id (log.record.uid) is empty")
	assert.Equal(t, store.DeadLettered, res[2].Outcome)
	assert.Contains(t, res[2].Reason, "hash mismatch: writer sent 0000")
	assert.Equal(t, store.Stored, res[3].Outcome, "a missing hash is computed")
	assert.Equal(t, []int64{1, 2, 3, 4}, []int64{res[0].Sequence, res[1].Sequence, res[2].Sequence, res[3].Sequence})
	dl, err := s.DeadLetters(ctx, storetest.T0, storetest.T0.Add(1e12), 0)
	require.NoError(t, err)
	require.Len(t, dl, 3)
	assert.Contains(t, dl[0].Document, `"amount":"NaN"`)
	got, err := s.Events(ctx, store.EventQuery{})
	require.NoError(t, err)
	require.Len(t, got, 1)
	h, _ := events[4].Hash()
	assert.Equal(t, h, got[0].Hash)
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	s, err := Open(ctx, file)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close twice is harmless")
	_, err = Open(ctx, filepath.Join(file, "audit.db"))
	require.ErrorContains(t, err, "create directory")

	s, err = Open(ctx, file)
	require.NoError(t, err)
	_, err = s.DB().Exec(`PRAGMA user_version = 99`)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	_, err = Open(ctx, file)
	require.ErrorContains(t, err, "schema version 99 is newer than this build understands (3)")
}

func TestWriteHonoursContext(t *testing.T) {
	s, err := Open(context.Background(), Memory)
	require.NoError(t, err)
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = s.Write(ctx, "default", storetest.Stored(storetest.RunEvents("b1", storetest.T0)...))
	require.Error(t, err)
	n, err := s.LastSequence(context.Background(), "default")
	require.NoError(t, err)
	assert.Zero(t, n, "a failed Write leaves nothing")
	res, err := s.Write(context.Background(), "default", nil)
	require.NoError(t, err)
	assert.Empty(t, res)
}

// TestUpgradeFromSchema1 turns a fresh database back into schema 1 (no
// search columns, user_version 1) and reopens it: the upgrade adds the
// columns and fills them from the stored documents, so the new filters find
// events written before the upgrade.
func TestUpgradeFromSchema1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.db")
	s, err := Open(ctx, path)
	require.NoError(t, err)
	child := storetest.RunEvents("b2", storetest.T0.Add(time.Hour))
	for i := range child {
		child[i].ParentBatchID = "b1"
	}
	_, err = s.Write(ctx, "default", storetest.Stored(append(storetest.RunEvents("b1", storetest.T0), child...)...))
	require.NoError(t, err)
	for _, stmt := range []string{
		`DROP INDEX events_actor`, `DROP INDEX events_lineage`, `DROP INDEX events_finding`, `DROP INDEX runs_parent`,
		`ALTER TABLE events DROP COLUMN actor_id`, `ALTER TABLE events DROP COLUMN lineage_id`,
		`ALTER TABLE events DROP COLUMN finding_type`, `ALTER TABLE runs DROP COLUMN parent_id`,
		// and what schema 3 added for the Merkle log: the tree is rebuilt.
		`ALTER TABLE streams DROP COLUMN tree_root`,
		`ALTER TABLE dead_letters DROP COLUMN kind`, `DROP TABLE tiles`, `DROP TABLE checkpoints`,
		`PRAGMA user_version = 1`,
	} {
		_, err := s.DB().Exec(stmt)
		require.NoError(t, err, stmt)
	}
	require.NoError(t, s.Close())

	core, logs := observer.New(zap.InfoLevel)
	s, err = OpenWithLogger(ctx, path, zap.New(core))
	require.NoError(t, err)
	defer s.Close()
	var version int
	require.NoError(t, s.DB().QueryRow(`PRAGMA user_version`).Scan(&version))
	assert.Equal(t, schemaVersion, version)
	got, err := s.Events(ctx, store.EventQuery{ActorID: "svc-etl", FindingType: "data_loss"})
	require.NoError(t, err)
	assert.Len(t, got, 2)
	got, err = s.Events(ctx, store.EventQuery{LineageID: "ord-A-1", BatchID: "b2"})
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, "batchaudit.lineage.record", got[0].Name)
	runs, err := s.Runs(ctx, store.RunQuery{ParentBatchID: "b1"})
	require.NoError(t, err)
	require.Len(t, runs, 1)
	assert.Equal(t, "b2", runs[0].BatchID)

	// The trail had no Merkle tree: loading the stream builds it from the
	// entries (the run summaries are not counted again), and writing goes on.
	tree, err := s.Tree(ctx, "default")
	require.NoError(t, err)
	assert.Equal(t, storetest.RecomputedTree(t, s, "default"), tree)
	assert.Equal(t, int64(len(child)*2), tree.N)
	built := logs.FilterMessage("Building the Merkle tree of a stream from its stored entries").AllUntimed()
	require.Len(t, built, 1, "the build is logged (at its end, and every 100,000 entries)")
	assert.Equal(t, map[string]any{"stream": "default", "entries": tree.N, "of": tree.N}, built[0].ContextMap())
	res, err := s.Write(ctx, "default", storetest.Stored(storetest.RunEvents("b3", storetest.T0.Add(2*time.Hour))...))
	require.NoError(t, err)
	assert.Equal(t, tree.N+1, res[0].Sequence)
	assert.Equal(t, storetest.RecomputedTree(t, s, "default"), mustTree(t, s))
	runs, err = s.Runs(ctx, store.RunQuery{ParentBatchID: "b1"})
	require.NoError(t, err)
	assert.Equal(t, int64(len(child)), runs[0].Events, "the migration did not fold the events again")
}

func mustTree(t *testing.T, s *Store) tlog.Tree {
	t.Helper()
	tree, err := s.Tree(context.Background(), "default")
	require.NoError(t, err)
	return tree
}

// An event parsed with only searchKeys gives the search columns and id the
// whole event gives, with every field set (a column derived from a field
// without a key fails here).
func TestSearchKeysCoverColumns(t *testing.T) {
	for _, name := range auditevent.Names() {
		e := storetest.FullEvent(name, storetest.T0)
		doc, err := e.AppendCanonical(nil)
		require.NoError(t, err)
		full, err := auditevent.ParseCanonical(doc)
		require.NoError(t, err)
		var part auditevent.Event
		require.NoError(t, auditevent.ParseSelected(doc, searchKeys, &part))
		require.Equal(t, appendSearchColumns(nil, &full), appendSearchColumns(nil, &part), name)
		require.Equal(t, full.ID, part.ID)
	}
}

// The packed search columns decide as comparing the columns one by one
// does (the reference), for intact rows (which take the fast path) and for
// columns edited to other text, bytes SQLite keeps but JSON cannot (NUL,
// invalid UTF-8), BLOBs, text and REALs in the INTEGER column.
func TestPackedColumnsMatchColumns(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Memory)
	require.NoError(t, err)
	defer s.Close()
	evs := storetest.RunEvents("b1", storetest.T0)
	_, err = s.Write(ctx, "main", storetest.Stored(evs...))
	require.NoError(t, err)
	reference := func(ev *auditevent.Event, stored []any) []string {
		var out []string
		for i, w := range appendSearchColumns(nil, ev) {
			if !sameColumn(stored[i], w) {
				out = append(out, fmt.Sprintf("column %s is %q, the document says %q", columnNames[i], fmt.Sprint(stored[i]), fmt.Sprint(w)))
			}
		}
		return out
	}
	check := func(name string, seq int, fast bool) {
		stored := make([]any, len(columnNames))
		dst := []any{new(string), new(string)}
		for i := range stored {
			dst = append(dst, &stored[i])
		}
		require.NoError(t, s.db.QueryRow(`SELECT document, `+eventPacked+`, `+searchColumns+` FROM events WHERE sequence = ?`, seq).Scan(dst...), name)
		doc, packed := *dst[0].(*string), *dst[1].(*string)
		ev, err := auditevent.ParseCanonical([]byte(doc))
		require.NoError(t, err)
		want := reference(&ev, stored)
		var head [3]string
		tail, vals, err := splitPacked(packed, [3]*string{&head[0], &head[1], &head[2]})
		require.NoError(t, err, name)
		assert.Equal(t, [3]string{"event", ev.ID, storetest.Stored(ev)[0].Hash}, head, name)
		assert.Equal(t, want, checkColumns(&ev, tail, vals), "%s: %s", name, packed)
		assert.Equal(t, fast, vals == nil && string(appendPacked(nil, searchValuesOf(&ev))) == tail, name)
		if fast {
			assert.Empty(t, want, name)
		} else {
			assert.NotEmpty(t, want, name)
		}
	}
	for seq := 1; seq <= len(evs); seq++ {
		check("intact", seq, true)
	}
	// Values JSON escapes take the fast path too.
	odd := storetest.RunEvents("b\"1\\\n\u0001\u007f\u00e9\u2028\U0001F600", storetest.T0)[:1]
	_, err = s.Write(ctx, "main", storetest.Stored(odd...))
	require.NoError(t, err)
	check("intact, escaped", len(evs)+1, true)
	for i, c := range []struct{ name, set string }{
		{"other text", `batch_id = 'b2'`},
		{"NUL inside", `batch_id = 'b1' || char(0) || 'x'`},
		{"invalid UTF-8", `record_id = CAST(X'41ff' AS TEXT)`},
		{"blob of the same bytes", `batch_id = CAST('b1' AS BLOB)`},
		{"quote and newline", `name = name || '"' || char(10)`},
		{"real time", `time = time + 0.5`},
		{"empty", `actor_id = ''`},
		{"text time", `time = 'soon'`},
		{"JSONB of the same text", `batch_id = X'276231'`},
		{"control characters and non-ASCII", `record_id = record_id || char(1, 127, 8364, 8232) || '\'`},
	} {
		seq := i + 2
		_, err := s.db.Exec(`UPDATE events SET `+c.set+` WHERE sequence = ?`, seq)
		require.NoError(t, err, c.name)
		check(c.name, seq, false)
	}
}

// EachEntry keeps the driver's buffer of each document (ownedBytes): they
// must still hold their rows once every row is read.
func TestEachEntryOwnsDocuments(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Memory)
	require.NoError(t, err)
	defer s.Close()
	for r := range 3 {
		_, err = s.Write(ctx, "main", storetest.Stored(storetest.RunEvents(fmt.Sprint("b", r), storetest.T0)...))
		require.NoError(t, err)
	}
	var entries []*store.StoredEntry
	require.NoError(t, s.EachEntry(ctx, "main", func(e *store.StoredEntry) error {
		entries = append(entries, e)
		return nil
	}))
	require.Len(t, entries, 51)
	for _, e := range entries {
		var doc []byte
		require.NoError(t, s.db.QueryRow(`SELECT document FROM events WHERE stream = 'main' AND sequence = ?`, e.Sequence).Scan(&doc))
		require.Equal(t, string(doc), string(e.Document), e.Sequence)
	}
}

// Gaps are listed with the dead letters, by kind, and not counted as dead
// letters. This store never makes one (it looks every id up before
// numbering), so the row is put in as an adopted Elasticsearch trail would
// hold it.
func TestGapsAreNotCountedAsDeadLetters(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "audit.db"))
	require.NoError(t, err)
	defer s.Close()
	_, err = s.Write(ctx, "default", storetest.Stored(storetest.RunEvents("g1", storetest.T0)...))
	require.NoError(t, err)
	_, err = s.DB().Exec(`INSERT INTO dead_letters (stream, sequence, event_id, hash, doc_hash, reason, document, time, ingested, kind)
		VALUES ('default', 100, '', '', 'h', 'no entry was stored under this number', '{"gap":{}}', 1, 1, 'gap')`)
	require.NoError(t, err)
	dls, err := s.DeadLetters(ctx, time.Time{}, time.Time{}, 0)
	require.NoError(t, err)
	require.Len(t, dls, 1)
	assert.Equal(t, merkle.KindGap, dls[0].Kind)
	counts, err := s.CountDeadLetters(ctx, time.Time{}, time.Time{})
	require.NoError(t, err)
	assert.Equal(t, []store.DeadLetterCount{{Stream: "default", Gaps: 1}}, counts)
}
