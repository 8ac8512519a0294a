package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/canonical"
	"github.com/batchaudit/batchaudit/store"
)

const (
	insertDeadLetter = `INSERT INTO dead_letters (stream, sequence, event_id, hash, doc_hash, reason, document, time, ingested)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(stream, event_id, doc_hash) DO NOTHING`
	selectDeadLetter = `SELECT sequence FROM dead_letters WHERE stream = ? AND event_id = ? AND doc_hash = ?`
	selectRun        = `SELECT summary FROM runs WHERE batch_id = ?`
	upsertRun        = `INSERT INTO runs (batch_id, job_name, status, actor_id, start, end, summary, parent_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(batch_id) DO UPDATE SET job_name = excluded.job_name, status = excluded.status,
		actor_id = excluded.actor_id, start = excluded.start, end = excluded.end, summary = excluded.summary,
		parent_id = excluded.parent_id`
	upsertStream = `INSERT INTO streams (name, last_sequence) VALUES (?, ?)
		ON CONFLICT(name) DO UPDATE SET last_sequence = excluded.last_sequence`
)

// insertChunk is how many events one INSERT statement carries: fewer
// statements is most of the write throughput (18 columns × 200 rows stays far
// below SQLite's bound-variable limit).
const insertChunk = 200

// lookupChunk is how many ids one existence query asks for.
const lookupChunk = 500

// writeTx is the state of one Write call: one transaction, the stream's
// next sequence number, the ids already stored and the run summaries it
// touched.
type writeTx struct {
	ctx              context.Context
	tx               *sql.Tx
	stream           string
	last             int64
	ingested         int64
	runs             map[string]*store.Run
	existing         map[string]storedRef
	pending          []pendingEvent
	insDead, selDead *sql.Stmt
}

type storedRef struct {
	hash     string
	sequence int64
}

type pendingEvent struct {
	e   *auditevent.Event
	seq int64
	// hash and doc are what is inserted.
	hash string
	doc  []byte
}

// Write implements store.Writer: one transaction per call, so a crash or an
// error leaves either the whole call or nothing; on error no outcome is known
// and the caller retries the call (already stored events then come back as
// Duplicate).
func (s *Store) Write(ctx context.Context, stream string, events []store.StoredEvent) ([]store.Result, error) {
	if len(events) == 0 {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	w := &writeTx{ctx: ctx, tx: tx, stream: stream, ingested: nanos(s.now().UTC()), runs: map[string]*store.Run{}}
	if err := tx.QueryRowContext(ctx, `SELECT last_sequence FROM streams WHERE name = ?`, stream).Scan(&w.last); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlitestore: read stream %q: %w", stream, err)
	}
	if err := w.lookup(events); err != nil {
		return nil, err
	}
	for _, p := range []struct {
		dst   **sql.Stmt
		query string
	}{{&w.insDead, insertDeadLetter}, {&w.selDead, selectDeadLetter}} {
		if *p.dst, err = tx.PrepareContext(ctx, p.query); err != nil {
			return nil, fmt.Errorf("sqlitestore: prepare: %w", err)
		}
		defer (*p.dst).Close()
	}
	results := make([]store.Result, len(events))
	for i := range events {
		if results[i], err = w.write(&events[i]); err != nil {
			return nil, err
		}
	}
	if err := w.insertPending(); err != nil {
		return nil, err
	}
	if err := w.flush(); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("sqlitestore: commit: %w", err)
	}
	return results, nil
}

// lookup loads the hash and sequence of every id of the call already stored,
// a few queries per call instead of one per event.
func (w *writeTx) lookup(events []store.StoredEvent) error {
	w.existing = make(map[string]storedRef, len(events))
	ids := make([]any, 0, lookupChunk)
	query := func() error {
		rows, err := w.tx.QueryContext(w.ctx, `SELECT id, hash, sequence FROM events WHERE id IN (?`+strings.Repeat(", ?", len(ids)-1)+`)`, ids...)
		if err != nil {
			return fmt.Errorf("sqlitestore: look up ids: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			var ref storedRef
			if err := rows.Scan(&id, &ref.hash, &ref.sequence); err != nil {
				return fmt.Errorf("sqlitestore: look up ids: %w", err)
			}
			w.existing[id] = ref
		}
		ids = ids[:0]
		return rows.Err()
	}
	for i := range events {
		if events[i].ID == "" {
			continue
		}
		ids = append(ids, events[i].ID)
		if len(ids) == lookupChunk {
			if err := query(); err != nil {
				return err
			}
		}
	}
	if len(ids) > 0 {
		return query()
	}
	return nil
}

func (w *writeTx) write(se *store.StoredEvent) (store.Result, error) {
	e := &se.Event
	res := store.Result{EventID: e.ID}
	doc, err := se.Document, error(nil)
	if len(doc) == 0 {
		doc, err = e.AppendCanonical(nil)
	}
	if err != nil {
		// Not representable as canonical JSON (e.g. NaN, or an integer
		// beyond 2^53): keep a readable form so nothing is lost. It has no
		// hash, since there is no canonical content to cover.
		return w.deadLetter(e, "", fallbackDocument(e), res, store.DeadLettered, "event cannot be encoded as canonical JSON: "+err.Error())
	}
	hash := canonical.HashBytes(doc)
	switch {
	case se.DeadLetterReason != "":
		return w.deadLetter(e, hash, doc, res, store.DeadLettered, se.DeadLetterReason)
	case e.ID == "":
		return w.deadLetter(e, hash, doc, res, store.DeadLettered, "event id ("+auditevent.AttrEventID+") is empty")
	case se.Hash != "" && se.Hash != hash:
		// The stored hash must be recomputable from the stored document, or
		// verification would later report tampering that never happened.
		return w.deadLetter(e, hash, doc, res, store.DeadLettered,
			fmt.Sprintf("hash mismatch: writer sent %s, content hashes to %s", se.Hash, hash))
	}
	if ex, ok := w.existing[e.ID]; ok {
		res.ExistingHash = ex.hash
		if ex.hash == hash {
			res.Outcome, res.Sequence = store.Duplicate, ex.sequence
			return res, nil
		}
		reason := fmt.Sprintf("conflict: event %s is stored with hash %s (sequence %d); received hash %s", e.ID, ex.hash, ex.sequence, hash)
		return w.deadLetter(e, hash, doc, res, store.Conflict, reason)
	}
	w.last++
	w.existing[e.ID] = storedRef{hash, w.last}
	w.pending = append(w.pending, pendingEvent{e: e, seq: w.last, hash: hash, doc: doc})
	res.Outcome, res.Sequence = store.Stored, w.last
	return res, w.applyToRun(e)
}

const eventColumns = 18

// insertPending inserts the new events with multi-row INSERTs.
func (w *writeTx) insertPending() error {
	var full *sql.Stmt
	defer func() {
		if full != nil {
			full.Close()
		}
	}()
	args := make([]any, 0, insertChunk*eventColumns)
	for len(w.pending) > 0 {
		n := min(len(w.pending), insertChunk)
		args = args[:0]
		for _, p := range w.pending[:n] {
			e := p.e
			args = append(args, e.ID, w.stream, p.seq, p.hash, e.Name, nanos(e.Time), e.BatchID, e.RecordID,
				e.Source.Name, e.Source.String(), e.Target.Name, e.Target.String(), e.ChangeType, p.doc, w.ingested, e.Actor.ID, e.LineageID, e.FindingType)
		}
		var err error
		if n == insertChunk {
			if full == nil {
				if full, err = w.tx.PrepareContext(w.ctx, insertEvents(insertChunk)); err != nil {
					return fmt.Errorf("sqlitestore: prepare: %w", err)
				}
			}
			_, err = full.ExecContext(w.ctx, args...)
		} else {
			_, err = w.tx.ExecContext(w.ctx, insertEvents(n), args...)
		}
		if err != nil {
			return fmt.Errorf("sqlitestore: insert events: %w", err)
		}
		w.pending = w.pending[n:]
	}
	return nil
}

func insertEvents(rows int) string {
	row := "(?" + strings.Repeat(", ?", eventColumns-1) + ")"
	return `INSERT INTO events (id, stream, sequence, hash, name, time, batch_id, record_id,
		source_name, source, target_name, target, change_type, document, ingested, actor_id, lineage_id, finding_type) VALUES ` +
		row + strings.Repeat(", "+row, rows-1)
}

// deadLetter keeps the event in dead_letters with the next sequence number;
// a dead letter already kept is a Duplicate. hash is the SHA-256 of doc, or
// empty when the event has no canonical form.
func (w *writeTx) deadLetter(e *auditevent.Event, hash string, doc []byte, res store.Result, outcome store.Outcome, reason string) (store.Result, error) {
	docHash := canonical.HashBytes(doc)
	t := nanos(e.Time)
	if t == 0 {
		t = w.ingested
	}
	seq := w.last + 1
	r, err := w.insDead.ExecContext(w.ctx, w.stream, seq, e.ID, hash, docHash, reason, doc, t, w.ingested)
	if err != nil {
		return res, fmt.Errorf("sqlitestore: insert dead letter %s: %w", e.ID, err)
	}
	if n, _ := r.RowsAffected(); n == 1 {
		w.last = seq
		res.Outcome, res.Sequence, res.Reason = outcome, seq, reason
		return res, nil
	}
	if err := w.selDead.QueryRowContext(w.ctx, w.stream, e.ID, docHash).Scan(&res.Sequence); err != nil {
		return res, fmt.Errorf("sqlitestore: read dead letter %s: %w", e.ID, err)
	}
	res.Outcome, res.Reason = store.Duplicate, "already dead-lettered: "+reason
	return res, nil
}

func (w *writeTx) applyToRun(e *auditevent.Event) error {
	if e.BatchID == "" {
		return nil
	}
	run, ok := w.runs[e.BatchID]
	if !ok {
		run = &store.Run{}
		var summary string
		err := w.tx.QueryRowContext(w.ctx, selectRun, e.BatchID).Scan(&summary)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return fmt.Errorf("sqlitestore: read run %s: %w", e.BatchID, err)
		default:
			if err := json.Unmarshal([]byte(summary), run); err != nil {
				return fmt.Errorf("sqlitestore: run %s summary: %w", e.BatchID, err)
			}
		}
		w.runs[e.BatchID] = run
	}
	store.ApplyToRun(run, e)
	return nil
}

// flush writes the touched run summaries and the stream's last sequence.
func (w *writeTx) flush() error {
	for id, run := range w.runs {
		summary, err := json.Marshal(run)
		if err != nil {
			return fmt.Errorf("sqlitestore: encode run %s: %w", id, err)
		}
		if _, err := w.tx.ExecContext(w.ctx, upsertRun, id, run.JobName, run.Status, run.Actor.ID,
			nanos(run.Start), nanos(run.End), summary, run.ParentBatchID); err != nil {
			return fmt.Errorf("sqlitestore: write run %s: %w", id, err)
		}
	}
	if _, err := w.tx.ExecContext(w.ctx, upsertStream, w.stream, w.last); err != nil {
		return fmt.Errorf("sqlitestore: write stream %q: %w", w.stream, err)
	}
	return nil
}

// fallbackDocument is a best-effort JSON of an event that JCS refuses: JCS
// errors are about numbers, so encoding/json with them as strings works.
func fallbackDocument(e *auditevent.Event) []byte {
	c := e.Canonical()
	b, err := json.Marshal(stringifyNumbers(c))
	if err != nil {
		return []byte(fmt.Sprintf("%q", fmt.Sprint(c)))
	}
	return b
}

func stringifyNumbers(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = stringifyNumbers(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = stringifyNumbers(x)
		}
		return out
	case float64, float32, int, int64, int32, uint64, uint32:
		return fmt.Sprint(t)
	}
	return v
}
