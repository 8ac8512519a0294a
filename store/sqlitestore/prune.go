package sqlitestore

import (
	"context"
	"fmt"
	"strings"

	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/merkle"
)

var _ store.Pruner = (*Store)(nil)

// EachEntryAge implements store.Pruner.
func (s *Store) EachEntryAge(ctx context.Context, stream string, fn func(store.EntryAge) bool) error {
	rows, err := s.db.QueryContext(ctx, `
		SELECT sequence, 'event', batch_id, max(time, ingested) FROM events WHERE stream = ?
		UNION ALL
		SELECT sequence, kind, '', max(time, ingested) FROM dead_letters WHERE stream = ?
		ORDER BY 1`, stream, stream)
	if err != nil {
		return fmt.Errorf("sqlitestore: read stream %q: %w", stream, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			a    store.EntryAge
			kind string
			t    int64
		)
		if err := rows.Scan(&a.Sequence, &kind, &a.BatchID, &t); err != nil {
			return fmt.Errorf("sqlitestore: read stream %q: %w", stream, err)
		}
		a.Kind, a.Time = merkle.Kind(kind), fromNanos(t)
		if !fn(a) {
			return nil
		}
	}
	return rows.Err()
}

// RunExtents implements store.Pruner.
func (s *Store) RunExtents(ctx context.Context, stream string, batchIDs []string) (map[string]store.RunExtent, error) {
	out := map[string]store.RunExtent{}
	for len(batchIDs) > 0 {
		n := min(len(batchIDs), lookupChunk)
		args := []any{stream}
		for _, id := range batchIDs[:n] {
			args = append(args, id)
		}
		rows, err := s.db.QueryContext(ctx, `SELECT batch_id, max(CASE WHEN stream = ?1 THEN sequence END), max(stream <> ?1)
			FROM events WHERE batch_id IN (?`+strings.Repeat(", ?", n-1)+`) AND batch_id <> '' GROUP BY batch_id`, args...)
		if err != nil {
			return nil, fmt.Errorf("sqlitestore: run extents: %w", err)
		}
		for rows.Next() {
			var (
				id   string
				last *int64
				x    store.RunExtent
			)
			if err := rows.Scan(&id, &last, &x.Elsewhere); err != nil {
				rows.Close()
				return nil, fmt.Errorf("sqlitestore: run extents: %w", err)
			}
			if last != nil {
				x.Last = *last
				out[id] = x
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("sqlitestore: run extents: %w", err)
		}
		batchIDs = batchIDs[n:]
	}
	return out, nil
}

// Prune implements store.Pruner: one transaction. The stream's row (its
// tree size and root), the tiles and the checkpoints are kept.
func (s *Store) Prune(ctx context.Context, stream string, through int64, runs []string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: prune: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	var n int64
	for _, table := range []string{"events", "dead_letters"} {
		r, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE stream = ? AND sequence <= ?`, stream, through)
		if err != nil {
			return 0, fmt.Errorf("sqlitestore: prune %s of %q: %w", table, stream, err)
		}
		k, _ := r.RowsAffected()
		n += k
	}
	for _, id := range runs {
		if _, err := tx.ExecContext(ctx, `DELETE FROM runs WHERE batch_id = ?`, id); err != nil {
			return 0, fmt.Errorf("sqlitestore: prune run %s: %w", id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("sqlitestore: prune: %w", err)
	}
	return n, nil
}

// CheckPrune implements store.Pruner: whoever can open the file can.
func (*Store) CheckPrune(context.Context) error { return nil }

// SharedWriters implements store.Pruner: SQLite serialises writers, and a
// collector whose next write meets the retention event's sequence fails
// that write, reloads the stream and retries.
func (*Store) SharedWriters() bool { return true }
