package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/merkle"
)

var _ store.Integrity = (*Store)(nil)

// Tree implements store.Store.
func (s *Store) Tree(ctx context.Context, stream string) (tlog.Tree, error) {
	return s.log.Tree(ctx, stream)
}

// Reload implements store.Reloader.
func (s *Store) Reload(stream string) { s.log.Reload(stream) }

// Streams implements store.Integrity.
func (s *Store) Streams(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT stream FROM events UNION SELECT DISTINCT stream FROM dead_letters UNION SELECT name FROM streams ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: streams: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		out = append(out, name)
	}
	return out, rows.Err()
}

// Head implements store.Integrity.
func (s *Store) Head(ctx context.Context, stream string) (store.Head, error) {
	return backend{s}.Head(ctx, stream)
}

// EachEntry implements store.Integrity. For events it compares every search
// column with the value the stored document gives (one derivation serves the
// insert and this check), and the hash with the document's.
func (s *Store) EachEntry(ctx context.Context, stream string, fn func(*store.StoredEntry) error) error {
	rows, err := s.db.QueryContext(ctx, `
		SELECT sequence, 'event', id, hash, document, `+searchColumns+` FROM events WHERE stream = ?
		UNION ALL
		SELECT sequence, kind, event_id, doc_hash, document, '', 0, '', '', '', '', '', '', '', '', '', '' FROM dead_letters WHERE stream = ?
		ORDER BY 1`, stream, stream)
	if err != nil {
		return fmt.Errorf("sqlitestore: read stream %q: %w", stream, err)
	}
	defer rows.Close()
	for rows.Next() {
		e := store.StoredEntry{Stream: stream}
		var kind string
		stored := make([]any, 12)
		dst := []any{&e.Sequence, &kind, &e.EventID, &e.Hash, &e.Document}
		for i := range stored {
			dst = append(dst, &stored[i])
		}
		if err := rows.Scan(dst...); err != nil {
			return fmt.Errorf("sqlitestore: read stream %q: %w", stream, err)
		}
		e.Kind = merkle.Kind(kind)
		if e.Kind == merkle.KindEvent {
			id := e.EventID
			e.Indexed = func(ev *auditevent.Event) []string {
				out := checkColumns(ev, stored)
				if id != ev.ID {
					// The id is how prove, history and redelivery find an event.
					out = append(out, fmt.Sprintf("column id is %q, the document says %q", id, ev.ID))
				}
				return out
			}
		}
		if err := fn(&e); err != nil {
			return err
		}
	}
	return rows.Err()
}

var columnNames = strings.Split(strings.ReplaceAll(searchColumns, " ", ""), ",")

// checkColumns compares the stored search columns with the ones derived
// from the stored document's event.
func checkColumns(ev *auditevent.Event, stored []any) []string {
	want := appendSearchColumns(nil, ev)
	var out []string
	for i, w := range want {
		if !sameColumn(stored[i], w) {
			out = append(out, fmt.Sprintf("column %s is %q, the document says %q", columnNames[i], fmt.Sprint(stored[i]), fmt.Sprint(w)))
		}
	}
	return out
}

var runColumnList = strings.Split(strings.ReplaceAll(runColumnNames, " ", ""), ",")

// EachRunSummary implements store.Integrity: the runs table's columns
// (what `runs` filters and sorts by) are compared with the summary.
func (s *Store) EachRunSummary(ctx context.Context, fn func(*store.Run, []string) error) error {
	rows, err := s.db.QueryContext(ctx, `SELECT summary, `+runColumnNames+` FROM runs ORDER BY batch_id`)
	if err != nil {
		return fmt.Errorf("sqlitestore: read runs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var summary []byte
		stored := make([]any, len(runColumnList))
		dst := []any{&summary}
		for i := range stored {
			dst = append(dst, &stored[i])
		}
		if err := rows.Scan(dst...); err != nil {
			return fmt.Errorf("sqlitestore: read run: %w", err)
		}
		var r store.Run
		if err := store.DecodeRun(summary, &r); err != nil {
			return fmt.Errorf("sqlitestore: run %v summary: %w", stored[0], err)
		}
		var diffs []string
		for i, w := range runColumns(nil, &r) {
			if fmt.Sprint(stored[i]) != fmt.Sprint(w) {
				diffs = append(diffs, fmt.Sprintf("column %s is %q, the summary says %q", runColumnList[i], fmt.Sprint(stored[i]), fmt.Sprint(w)))
			}
		}
		if err := fn(&r, diffs); err != nil {
			return err
		}
	}
	return rows.Err()
}

// EntryOf implements store.Integrity.
func (s *Store) EntryOf(ctx context.Context, eventID string) (*store.StoredEntry, error) {
	e := store.StoredEntry{Kind: merkle.KindEvent, EventID: eventID}
	err := s.db.QueryRowContext(ctx, `SELECT stream, sequence, hash, document FROM events WHERE id = ?`, eventID).
		Scan(&e.Stream, &e.Sequence, &e.Hash, &e.Document)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: event %s: %w", eventID, err)
	}
	return &e, nil
}

// PutCheckpoint implements store.Integrity.
func (s *Store) PutCheckpoint(ctx context.Context, c store.StoredCheckpoint) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO checkpoints (stream, size, root, note, created) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT(stream, size) DO NOTHING`, c.Stream, c.Size, c.Root, c.Note, nanos(c.Created))
	if err != nil {
		return fmt.Errorf("sqlitestore: keep checkpoint %s/%d: %w", c.Stream, c.Size, err)
	}
	return nil
}

// Checkpoints implements store.Integrity.
func (s *Store) Checkpoints(ctx context.Context, stream string) ([]store.StoredCheckpoint, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT size, root, note, created FROM checkpoints WHERE stream = ? ORDER BY size`, stream)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: checkpoints of %q: %w", stream, err)
	}
	defer rows.Close()
	var out []store.StoredCheckpoint
	for rows.Next() {
		c := store.StoredCheckpoint{Stream: stream}
		var created int64
		if err := rows.Scan(&c.Size, &c.Root, &c.Note, &created); err != nil {
			return nil, err
		}
		c.Created = fromNanos(created)
		out = append(out, c)
	}
	return out, rows.Err()
}

// sameColumn compares a scanned column with a derived one; the common types
// are compared directly, since verification does this for every event.
func sameColumn(stored, want any) bool {
	switch w := want.(type) {
	case string:
		if s, ok := stored.(string); ok {
			return s == w
		}
	case int64:
		if s, ok := stored.(int64); ok {
			return s == w
		}
	}
	return fmt.Sprint(stored) == fmt.Sprint(want)
}

// LastSequenceBefore implements store.Integrity. Both lookups walk the
// stream's sequence index backwards from its end, so a report on a recent
// period reads only the entries stored after it.
func (s *Store) LastSequenceBefore(ctx context.Context, stream string, t time.Time) (int64, error) {
	var ev, dl sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT
		(SELECT sequence FROM events WHERE stream = ? AND time < ? ORDER BY sequence DESC LIMIT 1),
		(SELECT sequence FROM dead_letters WHERE stream = ? AND time < ? AND kind <> ? ORDER BY sequence DESC LIMIT 1)`,
		stream, nanos(t), stream, nanos(t), string(merkle.KindGap)).Scan(&ev, &dl)
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: last sequence of %q before %s: %w", stream, t.UTC().Format(time.RFC3339Nano), err)
	}
	return max(ev.Int64, dl.Int64), nil
}
