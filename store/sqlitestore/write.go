package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/merkle"
)

// The store's rules live in store.Log; this file gives it SQLite's
// primitives: one transaction per write, so everything a write stores
// (entries, run summaries, tiles and the tree head) commits together.

const (
	insertDeadLetter = `INSERT INTO dead_letters (stream, sequence, event_id, hash, doc_hash, reason, document, time, ingested, kind)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(stream, event_id, doc_hash) DO NOTHING`
	upsertRun = `INSERT INTO runs (` + runColumnNames + `, summary) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(batch_id) DO UPDATE SET job_name = excluded.job_name, status = excluded.status,
		actor_id = excluded.actor_id, start = excluded.start, end = excluded.end, summary = excluded.summary,
		parent_id = excluded.parent_id`
	upsertStream = `INSERT INTO streams (name, last_sequence, tree_root) VALUES (?, ?, ?)
		ON CONFLICT(name) DO UPDATE SET last_sequence = excluded.last_sequence, tree_root = excluded.tree_root`
	// A tile is stored once per position; a wider version replaces a
	// narrower one (its first hashes are the same).
	upsertTile = `INSERT INTO tiles (stream, level, idx, width, data) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT(stream, level, idx) DO UPDATE SET width = excluded.width, data = excluded.data
		WHERE excluded.width > tiles.width`
)

// insertChunk is how many events one INSERT statement carries: fewer
// statements is most of the write throughput (18 columns × 200 rows stays
// far below SQLite's bound-variable limit).
const insertChunk = 200

// lookupChunk is how many ids one existence query asks for.
const lookupChunk = 500

// Write implements store.Writer through the store's rules.
func (s *Store) Write(ctx context.Context, stream string, events []store.StoredEvent) ([]store.Result, error) {
	return s.log.Write(ctx, stream, events)
}

// backend is SQLite under store.Log.
type backend struct{ s *Store }

func (backend) Atomic() bool    { return true }
func (backend) LookupAll() bool { return true }

func (b backend) Begin(ctx context.Context, stream string) (store.Tx, error) {
	b.s.mu.Lock()
	tx, err := b.s.db.BeginTx(ctx, nil)
	if err != nil {
		b.s.mu.Unlock()
		return nil, fmt.Errorf("sqlitestore: begin: %w", err)
	}
	return &sqlTx{s: b.s, ctx: ctx, tx: tx, stream: stream, ingested: nanos(b.s.now().UTC())}, nil
}

func (b backend) Head(ctx context.Context, stream string) (store.Head, error) {
	var (
		n    int64
		root string
	)
	err := b.s.db.QueryRowContext(ctx, `SELECT last_sequence, tree_root FROM streams WHERE name = ?`, stream).Scan(&n, &root)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.Head{Tiles: tileReader{b.s, stream}}, nil
	case err != nil:
		return store.Head{}, fmt.Errorf("sqlitestore: read stream %q: %w", stream, err)
	case root == "":
		// A trail written before streams had trees: its entries are the
		// tail, and loading builds the tree from them.
		return store.Head{Tiles: tileReader{b.s, stream}}, nil
	}
	var h tlog.Hash
	if b, err := hex.DecodeString(root); err != nil || len(b) != len(h) {
		return store.Head{}, fmt.Errorf("sqlitestore: stream %q tree root %q is not a hash", stream, root)
	} else {
		copy(h[:], b)
	}
	return store.Head{Size: n, Root: &h, Tiles: tileReader{b.s, stream}}, nil
}

func (b backend) Tail(ctx context.Context, stream string, after int64, fn func(*store.Entry) error) error {
	rows, err := b.s.db.QueryContext(ctx, `
		SELECT sequence, 'event', id, hash, '', document, '' FROM events WHERE stream = ? AND sequence > ?
		UNION ALL
		SELECT sequence, kind, event_id, hash, doc_hash, document, reason FROM dead_letters WHERE stream = ? AND sequence > ?
		ORDER BY 1`, stream, after, stream, after)
	if err != nil {
		return fmt.Errorf("sqlitestore: read stream %q after %d: %w", stream, after, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			e                  store.Entry
			kind, id, hash, h2 string
			doc                []byte
			reason             string
		)
		if err := rows.Scan(&e.Sequence, &kind, &id, &hash, &h2, &doc, &reason); err != nil {
			return err
		}
		e.Kind, e.Document, e.Reason, e.Status = merkle.Kind(kind), doc, reason, store.Created
		if e.Kind == merkle.KindEvent {
			e.Key, e.Hash, e.EventHash = store.Key{ID: id}, hash, hash
			// A document that cannot be read (stored before the receiver
			// limited nesting, or damaged) must not stop the stream from
			// loading: it is adopted as it is, and verify reports it.
			e.Event = &store.StoredEvent{Event: auditevent.Event{ID: id}}
			store.DecodeEvent(e.Event, doc)
		} else {
			e.Key, e.Hash, e.EventHash = store.Key{DeadLetter: true, ID: id, DocHash: h2}, h2, hash
		}
		if err := fn(&e); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (backend) RecentKeys(context.Context, string, int, func(store.Key)) error { return nil }

// sqlTx is one store.Log write: one SQLite transaction.
type sqlTx struct {
	s        *Store
	ctx      context.Context
	tx       *sql.Tx
	stream   string
	ingested int64
	done     bool
}

func (t *sqlTx) Commit() error {
	t.done = true
	defer t.s.mu.Unlock()
	if err := t.tx.Commit(); err != nil {
		return fmt.Errorf("sqlitestore: commit: %w", err)
	}
	return nil
}

func (t *sqlTx) Rollback() {
	if t.done {
		return
	}
	t.done = true
	_ = t.tx.Rollback()
	t.s.mu.Unlock()
}

func (t *sqlTx) Lookup(keys []store.Key) (map[store.Key]store.Ref, error) {
	refs := make(map[store.Key]store.Ref, len(keys))
	var ids []any
	query := func() error {
		rows, err := t.tx.QueryContext(t.ctx, `SELECT id, sequence, hash, document FROM events WHERE id IN (?`+strings.Repeat(", ?", len(ids)-1)+`)`, ids...)
		if err != nil {
			return fmt.Errorf("sqlitestore: look up ids: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			var r store.Ref
			if err := rows.Scan(&id, &r.Sequence, &r.Hash, &r.Document); err != nil {
				return fmt.Errorf("sqlitestore: look up ids: %w", err)
			}
			refs[store.Key{ID: id}] = r
		}
		ids = ids[:0]
		return rows.Err()
	}
	for _, k := range keys {
		if k.DeadLetter {
			var r store.Ref
			err := t.tx.QueryRowContext(t.ctx, `SELECT sequence, doc_hash FROM dead_letters WHERE stream = ? AND event_id = ? AND doc_hash = ?`,
				t.stream, k.ID, k.DocHash).Scan(&r.Sequence, &r.Hash)
			switch {
			case errors.Is(err, sql.ErrNoRows):
			case err != nil:
				return nil, fmt.Errorf("sqlitestore: look up a dead letter: %w", err)
			default:
				refs[k] = r
			}
			continue
		}
		ids = append(ids, k.ID)
		if len(ids) == lookupChunk {
			if err := query(); err != nil {
				return nil, err
			}
		}
	}
	if len(ids) > 0 {
		if err := query(); err != nil {
			return nil, err
		}
	}
	return refs, nil
}

// Append inserts the entries; store.Log looked every key up in this
// transaction, so none is taken (a taken one is an error, not an outcome).
func (t *sqlTx) Append(entries []*store.Entry) error {
	var events []*store.Entry
	for _, e := range entries {
		if e.Kind == merkle.KindEvent {
			events = append(events, e)
			continue
		}
		var id string
		tm := t.ingested
		if e.Event != nil {
			id = e.Event.ID
			if n := nanos(e.Event.Time); n != 0 {
				tm = n
			}
		}
		r, err := t.tx.ExecContext(t.ctx, insertDeadLetter, t.stream, e.Sequence, id, e.EventHash, e.Hash, e.Reason, e.Document, tm, t.ingested, string(e.Kind))
		if err != nil {
			return fmt.Errorf("sqlitestore: insert dead letter %d: %w", e.Sequence, err)
		}
		e.Status = store.Created
		if n, _ := r.RowsAffected(); n == 0 {
			e.Status = store.Exists
		}
	}
	if err := t.insertEvents(events); err != nil {
		return err
	}
	for _, e := range events {
		e.Status = store.Created
	}
	return nil
}

const eventColumns = 18

// insertEvents inserts events with multi-row INSERTs.
func (t *sqlTx) insertEvents(events []*store.Entry) error {
	var full *sql.Stmt
	defer func() {
		if full != nil {
			full.Close()
		}
	}()
	args := make([]any, 0, insertChunk*eventColumns)
	for len(events) > 0 {
		n := min(len(events), insertChunk)
		args = args[:0]
		for _, p := range events[:n] {
			e := &p.Event.Event
			args = append(args, e.ID, t.stream, p.Sequence, p.Hash, p.Document, t.ingested)
			args = appendSearchColumns(args, e)
		}
		var err error
		if n == insertChunk {
			if full == nil {
				if full, err = t.tx.PrepareContext(t.ctx, insertEventsSQL(insertChunk)); err != nil {
					return fmt.Errorf("sqlitestore: prepare: %w", err)
				}
			}
			_, err = full.ExecContext(t.ctx, args...)
		} else {
			_, err = t.tx.ExecContext(t.ctx, insertEventsSQL(n), args...)
		}
		if err != nil {
			return fmt.Errorf("sqlitestore: insert events: %w", err)
		}
		events = events[n:]
	}
	return nil
}

func insertEventsSQL(rows int) string {
	row := "(?" + strings.Repeat(", ?", eventColumns-1) + ")"
	return `INSERT INTO events (id, stream, sequence, hash, document, ingested, ` + searchColumns + `) VALUES ` +
		row + strings.Repeat(", "+row, rows-1)
}

// searchColumns are the indexed copies of an event's content that queries
// use; appendSearchColumns derives them from the event, for inserting and
// for verifying them against the stored document.
const searchColumns = `name, time, batch_id, record_id, source_name, source, target_name, target, change_type, actor_id, lineage_id, finding_type`

// searchKeys are the attributes appendSearchColumns reads (besides name
// and time), with the event id EachEntry compares too
// (TestSearchKeysCoverColumns keeps the list complete).
var searchKeys = auditevent.Select(auditevent.AttrEventID, auditevent.AttrBatchID, auditevent.AttrRecordID,
	auditevent.AttrSourceNamespace, auditevent.AttrSourceName, auditevent.AttrTargetNamespace, auditevent.AttrTargetName,
	auditevent.AttrChangeType, auditevent.AttrUserID, auditevent.AttrLineageID, auditevent.AttrFindingType)

func appendSearchColumns(dst []any, e *auditevent.Event) []any {
	v := searchValuesOf(e)
	dst = append(dst, v.text[0], v.time)
	for _, t := range v.text[1:] {
		dst = append(dst, t)
	}
	return dst
}

// searchValues are the search columns of an event, typed: time is the
// second column, text the others in order (verification compares them
// for every event, without boxing each in an interface).
type searchValues struct {
	time int64
	text [11]string
}

func searchValuesOf(e *auditevent.Event) searchValues {
	return searchValues{nanos(e.Time), [11]string{e.Name, e.BatchID, e.RecordID, e.Source.Name, e.Source.String(),
		e.Target.Name, e.Target.String(), e.ChangeType, e.Actor.ID, e.LineageID, e.FindingType}}
}

// runColumnNames are the runs table's indexed copies of a summary, which
// runColumns derives from it, for writing and for verifying them.
const runColumnNames = `batch_id, job_name, status, actor_id, start, end, parent_id`

func runColumns(dst []any, r *store.Run) []any {
	return append(dst, r.BatchID, r.JobName, r.Status, r.Actor.ID, nanos(r.Start), nanos(r.End), r.ParentBatchID)
}

func (t *sqlTx) Runs(batchIDs []string) (map[string]*store.Run, error) {
	runs := make(map[string]*store.Run, len(batchIDs))
	for _, id := range batchIDs {
		var summary string
		err := t.tx.QueryRowContext(t.ctx, `SELECT summary FROM runs WHERE batch_id = ?`, id).Scan(&summary)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			continue
		case err != nil:
			return nil, fmt.Errorf("sqlitestore: read run %s: %w", id, err)
		}
		r := &store.Run{}
		if err := json.Unmarshal([]byte(summary), r); err != nil {
			return nil, fmt.Errorf("sqlitestore: run %s summary: %w", id, err)
		}
		runs[id] = r
	}
	return runs, nil
}

func (t *sqlTx) PutRuns(runs []*store.Run) error {
	for _, run := range runs {
		summary, err := json.Marshal(run)
		if err != nil {
			return fmt.Errorf("sqlitestore: encode run %s: %w", run.BatchID, err)
		}
		args := append(runColumns(make([]any, 0, 8), run), summary)
		if _, err := t.tx.ExecContext(t.ctx, upsertRun, args...); err != nil {
			return fmt.Errorf("sqlitestore: write run %s: %w", run.BatchID, err)
		}
	}
	return nil
}

func (t *sqlTx) PutTree(head tlog.Tree, tiles []merkle.Tile) error {
	for _, tl := range tiles {
		if _, err := t.tx.ExecContext(t.ctx, upsertTile, t.stream, tl.L, tl.N, tl.W, tl.Data); err != nil {
			return fmt.Errorf("sqlitestore: write tile: %w", err)
		}
	}
	if _, err := t.tx.ExecContext(t.ctx, upsertStream, t.stream, head.N, hex.EncodeToString(head.Hash[:])); err != nil {
		return fmt.Errorf("sqlitestore: write stream %q: %w", t.stream, err)
	}
	return nil
}

// tileReader reads a stream's stored tiles (tlog.TileReader): a narrower
// tile is served from the stored, wider one.
type tileReader struct {
	s      *Store
	stream string
}

func (tileReader) Height() int { return merkle.TileHeight }

func (r tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, tl := range tiles {
		var data []byte
		err := r.s.readTile.QueryRow(r.stream, tl.L, tl.N).Scan(&data)
		if err != nil {
			return nil, fmt.Errorf("sqlitestore: tile %d/%d of stream %q: %w", tl.L, tl.N, r.stream, err)
		}
		if len(data) < tl.W*tlog.HashSize {
			return nil, fmt.Errorf("sqlitestore: tile %d/%d of stream %q holds %d hashes, want %d", tl.L, tl.N, r.stream, len(data)/tlog.HashSize, tl.W)
		}
		out[i] = data[:tl.W*tlog.HashSize]
	}
	return out, nil
}

func (tileReader) SaveTiles([]tlog.Tile, [][]byte) {}
