package testbed

import (
	"crypto/rand"
	"database/sql"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"

	"github.com/batchaudit/batchaudit/store/merkle"
)

// sqliteSearchColumns are the events table's indexed copies of the
// document (docs/storage.md) and the event id the CLI looks events up by.
var sqliteSearchColumns = []string{"id", "name", "time", "batch_id", "record_id", "source_name", "source", "target_name",
	"target", "change_type", "actor_id", "lineage_id", "finding_type"}

var sqliteRunColumns = []string{"job_name", "status", "actor_id", "start", "end", "parent_id"}

// sqliteModel reads what the tamperings are chosen from.
func sqliteModel(t *testing.T, db *sql.DB, tr signedTrail) *trailModel {
	t.Helper()
	m := &trailModel{stream: "e2e"}
	rows, err := db.Query(`SELECT sequence, 'event', id, batch_id FROM events WHERE stream = ?
		UNION ALL SELECT sequence, kind, event_id, '' FROM dead_letters WHERE stream = ? ORDER BY 1`, m.stream, m.stream)
	require.NoError(t, err)
	for rows.Next() {
		var e modelEntry
		var kind string
		require.NoError(t, rows.Scan(&e.seq, &kind, &e.id, &e.batch))
		e.kind, e.isEvent = merkle.Kind(kind), kind == string(merkle.KindEvent)
		require.Equal(t, m.n()+1, e.seq, "the untampered trail is gapless")
		m.entries = append(m.entries, e)
	}
	require.NoError(t, rows.Err())
	rows.Close()
	rows, err = db.Query(`SELECT batch_id FROM runs ORDER BY batch_id`)
	require.NoError(t, err)
	for rows.Next() {
		var b string
		require.NoError(t, rows.Scan(&b))
		m.batches = append(m.batches, b)
	}
	rows.Close()
	for size := range readPublished(t, tr.checkpoints) {
		m.cps = append(m.cps, size)
	}
	slices.Sort(m.cps)
	return m
}

// sqliteTamper applies a tampering to a copy of the trail's database, in
// SQL, as a DBA with the file would.
type sqliteTamper struct {
	m        *trailModel
	notes    map[int64]string // published checkpoint notes by size
	attacker note.Signer      // a key of the same name as the collector's, not the collector's
}

func (st *sqliteTamper) apply(db *sql.DB, s *tamperSpec) error {
	rnd := mrand.New(mrand.NewPCG(s.seed, 1))
	stream := st.m.stream
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	exec := func(q string, args ...any) error {
		if _, err := tx.Exec(q, args...); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
		return nil
	}
	table := func(seq int64) string {
		if st.m.entries[seq-1].isEvent {
			return "events"
		}
		return "dead_letters"
	}
	hashColumn := func(seq int64) string {
		if st.m.entries[seq-1].isEvent {
			return "hash"
		}
		return "doc_hash"
	}
	// renumber moves every entry at from or later by delta (through
	// negative numbers: the sequence columns are unique).
	renumber := func(from, delta int64) error {
		for _, tb := range []string{"events", "dead_letters"} {
			if err := exec(`UPDATE `+tb+` SET sequence = -(sequence + ?) WHERE stream = ? AND sequence >= ?`, delta, stream, from); err != nil {
				return err
			}
			if err := exec(`UPDATE `+tb+` SET sequence = -sequence WHERE stream = ? AND sequence < 0`, stream); err != nil {
				return err
			}
		}
		return nil
	}

	switch s.kind {
	case tPayload, tPayloadHash:
		var doc []byte
		if err := tx.QueryRow(`SELECT document FROM `+table(s.seq)+` WHERE stream = ? AND sequence = ?`, stream, s.seq).Scan(&doc); err != nil {
			return err
		}
		changed, key, err := mutateDocument(doc, rnd)
		if err != nil {
			return err
		}
		s.subject = fmt.Sprintf("entry %d: %s", s.seq, key)
		if err := exec(`UPDATE `+table(s.seq)+` SET document = ? WHERE stream = ? AND sequence = ?`, string(changed), stream, s.seq); err != nil {
			return err
		}
		if s.kind == tPayloadHash {
			if err := exec(`UPDATE `+table(s.seq)+` SET `+hashColumn(s.seq)+` = ? WHERE stream = ? AND sequence = ?`, sha256Hex(changed), stream, s.seq); err != nil {
				return err
			}
		}
	case tDelete:
		s.subject = fmt.Sprintf("entry %d", s.seq)
		if err := exec(`DELETE FROM `+table(s.seq)+` WHERE stream = ? AND sequence = ?`, stream, s.seq); err != nil {
			return err
		}
		if s.variant == bkRenumbered || s.variant == bkTiles {
			if err := renumber(s.seq+1, -1); err != nil {
				return err
			}
		}
	case tTruncate:
		s.subject = fmt.Sprintf("entries %d..%d", st.m.n()-s.k+1, st.m.n())
		for _, tb := range []string{"events", "dead_letters"} {
			if err := exec(`DELETE FROM `+tb+` WHERE stream = ? AND sequence > ?`, stream, st.m.n()-s.k); err != nil {
				return err
			}
		}
		if s.variant == bkRecomputed || s.variant == bkTiles {
			// A careful truncation also drops the kept checkpoints it contradicts.
			if err := exec(`DELETE FROM checkpoints WHERE stream = ? AND size > ?`, stream, st.m.n()-s.k); err != nil {
				return err
			}
		}
	case tAppend:
		// A copy of a random event with a new id, hashed correctly; its
		// search columns are the copied event's, which the change keeps.
		var src int64
		for src = 1 + rnd.Int64N(st.m.n()); !st.m.entries[src-1].isEvent; src = 1 + rnd.Int64N(st.m.n()) {
		}
		var doc []byte
		if err := tx.QueryRow(`SELECT document FROM events WHERE stream = ? AND sequence = ?`, stream, src).Scan(&doc); err != nil {
			return err
		}
		id := fmt.Sprintf("forged-%d", s.id)
		forged, err := forgeEvent(doc, id)
		if err != nil {
			return err
		}
		s.subject = fmt.Sprintf("a copy of entry %d as entry %d", src, s.seq)
		if s.seq <= st.m.n() {
			if err := renumber(s.seq, 1); err != nil {
				return err
			}
		}
		if err := exec(`INSERT INTO events (id, stream, sequence, hash, document, ingested, `+strings.Join(sqliteSearchColumns[1:], ", ")+`)
			SELECT ?, stream, ?, ?, ?, ingested, `+strings.Join(sqliteSearchColumns[1:], ", ")+` FROM events WHERE stream = ? AND sequence = ?`,
			id, s.seq, sha256Hex(forged), string(forged), stream, map[bool]int64{true: src + 1, false: src}[s.seq <= src]); err != nil {
			return err
		}
	case tSwap:
		s.subject = fmt.Sprintf("entries %d and %d", s.seq, s.seq2)
		for _, tb := range []string{"events", "dead_letters"} {
			if err := exec(`UPDATE `+tb+` SET sequence = -sequence WHERE stream = ? AND sequence IN (?, ?)`, stream, s.seq, s.seq2); err != nil {
				return err
			}
			if err := exec(`UPDATE `+tb+` SET sequence = CASE sequence WHEN ? THEN ? ELSE ? END WHERE stream = ? AND sequence < 0`,
				-s.seq, s.seq2, s.seq, stream); err != nil {
				return err
			}
		}
	case tRun:
		var summary []byte
		if err := tx.QueryRow(`SELECT summary FROM runs WHERE batch_id = ?`, s.batch).Scan(&summary); err != nil {
			return err
		}
		v, err := decodeJSON(summary)
		if err != nil {
			return err
		}
		switch s.mode {
		case "summary":
			s.subject = fmt.Sprintf("run %s: summary %s", s.batch, editSummary(v, rnd))
			if err := exec(`UPDATE runs SET summary = ? WHERE batch_id = ?`, string(mustJSON(v)), s.batch); err != nil {
				return err
			}
		case "column":
			col := sqliteRunColumns[rnd.IntN(len(sqliteRunColumns))]
			s.subject = fmt.Sprintf("run %s: column %s", s.batch, col)
			set := col + " = " + col + " || 'x'"
			if col == "start" || col == "end" {
				set = col + " = " + col + " + 1000000000"
			}
			if err := exec(`UPDATE runs SET `+set+` WHERE batch_id = ?`, s.batch); err != nil {
				return err
			}
		case "deleted":
			s.subject = fmt.Sprintf("run %s deleted", s.batch)
			if err := exec(`DELETE FROM runs WHERE batch_id = ?`, s.batch); err != nil {
				return err
			}
		case "planted":
			s.subject = fmt.Sprintf("run planted-%s added", s.batch)
			v["batch_id"] = "planted-" + s.batch
			b := mustJSON(v)
			if err := exec(`INSERT INTO runs (batch_id, job_name, status, actor_id, start, end, summary, parent_id)
				SELECT ?, job_name, status, actor_id, start, end, ?, parent_id FROM runs WHERE batch_id = ?`, "planted-"+s.batch, string(b), s.batch); err != nil {
				return err
			}
		}
	case tIndexed:
		col := sqliteSearchColumns[rnd.IntN(len(sqliteSearchColumns))]
		s.subject = fmt.Sprintf("entry %d: column %s", s.seq, col)
		set := col + " = CASE " + col + " WHEN '' THEN 'planted' ELSE " + col + " || 'x' END"
		if col == "time" {
			set = "time = time + 1"
		}
		if err := exec(`UPDATE events SET `+set+` WHERE stream = ? AND sequence = ?`, stream, s.seq); err != nil {
			return err
		}
	case tCheckpoint:
		var noteText, root string
		if err := tx.QueryRow(`SELECT note, root FROM checkpoints WHERE stream = ? AND size = ?`, stream, s.cpSize).Scan(&noteText, &root); err != nil {
			return err
		}
		s.subject = fmt.Sprintf("checkpoint %d: %s", s.cpSize, s.mode)
		noteText, root, err := replacedCheckpoint(s, stream, noteText, root, st.notes, st.attacker, rnd)
		if err != nil {
			return err
		}
		if err := exec(`UPDATE checkpoints SET note = ?, root = ? WHERE stream = ? AND size = ?`, noteText, root, stream, s.cpSize); err != nil {
			return err
		}
	}

	// The bookkeeping.
	switch s.variant {
	case bkLowered, bkRaised:
		d := s.delta
		if s.variant == bkLowered {
			d = -d
		}
		if err := exec(`UPDATE streams SET last_sequence = last_sequence + ? WHERE name = ?`, d, stream); err != nil {
			return err
		}
	case bkRecomputed, bkRenumbered, bkTiles:
		leaves, err := sqliteLeaves(tx, stream)
		if err != nil {
			return err
		}
		size, root, tiles := treeOf(stream, leaves)
		if err := exec(`UPDATE streams SET last_sequence = ?, tree_root = ? WHERE name = ?`, size, root, stream); err != nil {
			return err
		}
		if s.variant == bkTiles {
			if err := exec(`DELETE FROM tiles WHERE stream = ?`, stream); err != nil {
				return err
			}
			for _, tl := range tiles {
				if err := exec(`INSERT INTO tiles (stream, level, idx, width, data) VALUES (?, ?, ?, ?, ?)`, stream, tl.L, tl.N, tl.W, tl.Data); err != nil {
					return err
				}
			}
		}
	}
	return tx.Commit()
}

// sqliteLeaves reads the entries as they are now, as an attacker
// recomputing the tree would: the hash is the SHA-256 of the document.
func sqliteLeaves(tx *sql.Tx, stream string) ([]leafOf, error) {
	rows, err := tx.Query(`SELECT sequence, 'event', document FROM events WHERE stream = ?
		UNION ALL SELECT sequence, kind, document FROM dead_letters WHERE stream = ? ORDER BY 1`, stream, stream)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []leafOf
	for rows.Next() {
		var l leafOf
		var kind string
		var doc []byte
		if err := rows.Scan(&l.seq, &kind, &doc); err != nil {
			return nil, err
		}
		l.kind, l.hash = merkle.Kind(kind), sha256Hex(doc)
		out = append(out, l)
	}
	return out, rows.Err()
}

// TestTamperSQLite tampers with copies of a SQLite trail the built
// collector wrote and checks that verify reports each tampering with its
// kind and sequence, and nothing on the untampered copy.
func TestTamperSQLite(t *testing.T) {
	began := time.Now()
	dir := t.TempDir()
	tr := writeSignedTrail(t, dir, "    sqlite:\n      path: {{DIR}}/audit.db\n")
	dbPath := filepath.Join(dir, "audit.db")
	requireIntact(t, tr.verifier, tr.checkpoints, "--db", dbPath)
	written := time.Since(began)

	pristine, err := os.ReadFile(dbPath)
	require.NoError(t, err)
	db, err := sql.Open("sqlite", dbPath)
	require.NoError(t, err)
	m := sqliteModel(t, db, tr)
	require.NoError(t, db.Close())
	sk, _, err := note.GenerateKey(rand.Reader, "batchaudit-test/tamper")
	require.NoError(t, err)
	attacker, err := note.NewSigner(sk)
	require.NoError(t, err)
	st := &sqliteTamper{m: m, notes: readPublished(t, tr.checkpoints), attacker: attacker}

	seed := tamperSeed(t)
	t.Logf("tamper seed %d (BATCHAUDIT_TAMPER_SEED repeats it); trail of %d entries, checkpoints %v", seed, m.n(), m.cps)
	rnd := mrand.New(mrand.NewPCG(seed, 0))
	count := tamperCount(t, "BATCHAUDIT_TAMPER_SQLITE", 720)
	specs := make([]tamperSpec, count)
	for i := range specs {
		specs[i] = newSpec(i, tamperKinds[i%len(tamperKinds)], m, rnd, specOpts{})
	}
	// Each verify opens its copy, and an open syncs the file a few times:
	// on a memory file system (/dev/shm, where there is one) the suite
	// takes half the time.
	copies := dir
	if shm, err := os.MkdirTemp("/dev/shm", "batchaudit-tamper-"); err == nil {
		copies = shm
		t.Cleanup(func() { _ = os.RemoveAll(shm) })
	}
	results := make([]tamperResult, count)
	work := make(chan int)
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for i := range work {
				s := &specs[i]
				path := filepath.Join(copies, fmt.Sprintf("tampered-%d.db", i))
				if err := os.WriteFile(path, pristine, 0o600); err != nil {
					results[i] = tamperResult{spec: *s, why: err.Error()}
					continue
				}
				tdb, err := sql.Open("sqlite", path)
				if err == nil {
					err = st.apply(tdb, s)
					tdb.Close()
				}
				if err != nil {
					results[i] = tamperResult{spec: *s, why: "apply: " + err.Error()}
					continue
				}
				out, code := runVerify(t, tr.verifier, tr.checkpoints, "--db", path)
				results[i] = judge([]tamperSpec{*s}, m, out, code)[0]
				_ = os.Remove(path)
			}
		})
	}
	for i := range specs {
		work <- i
	}
	close(work)
	wg.Wait()
	reportTamper(t, "sqlite", results, written, time.Since(began))
}

func tamperCount(t *testing.T, env string, def int) int {
	if s := os.Getenv(env); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(t, err)
		return n
	}
	return def
}

var suiteTable tamperTable

// reportTamper adds the results to the table, logs it, and fails with the
// tamperings not detected or misclassified.
func reportTamper(t *testing.T, backend string, results []tamperResult, written, total time.Duration) {
	t.Helper()
	var failed []string
	for _, r := range results {
		suiteTable.add(backend, r)
		if !r.right {
			failed = append(failed, fmt.Sprintf("#%d %s [%s] %s: %s", r.spec.id, r.spec.kind, r.spec.variant, r.spec.subject, r.why))
		}
	}
	t.Logf("%s: %d tamperings; trail written in %s, total %s\n%s", backend, len(results), written.Round(time.Second), total.Round(time.Second), suiteTable.String())
	if len(failed) > 0 {
		if len(failed) > 40 {
			failed = append(failed[:40], fmt.Sprintf("… and %d more", len(failed)-40))
		}
		t.Errorf("%d of %d tamperings not detected with the right kind:\n%s", len(failed), len(results), strings.Join(failed, "\n"))
	}
}
