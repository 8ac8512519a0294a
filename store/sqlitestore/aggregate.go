package sqlitestore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strings"
	"time"

	"github.com/batchaudit/batchaudit/canonical"
	"github.com/batchaudit/batchaudit/store"
)

var _ store.Aggregator = (*Store)(nil)

// groupColumns maps a group key to its SQL expression. Attributes without
// a column of their own are read from the document with json_extract;
// callers narrow those queries by event name first.
var groupColumns = map[store.GroupKey]string{
	store.ByName:       "name",
	store.ByBatch:      "batch_id",
	store.ByStream:     "stream",
	store.BySource:     "source",
	store.ByTarget:     "target",
	store.ByChangeType: "change_type",
	// Events before 1970 have no date in Elasticsearch (@timestamp is
	// date_nanos); they group under "" here too.
	store.ByDay:             `CASE WHEN time <= 0 THEN '' ELSE strftime('%Y-%m-%d', time / 1000000000, 'unixepoch') END`,
	store.ByFindingType:     "finding_type",
	store.ByFindingSeverity: attrColumn("batchaudit.finding.severity"),
	store.ByTransform:       attrColumn("batchaudit.transform.name"),
	store.ByErrorType:       attrColumn("error.type"),
}

// attrColumn reads one attribute from the document. The document is
// parsed only when the key's text occurs in it (a fast substring test), so
// grouping by it over all events costs little more than over the few that
// carry it.
func attrColumn(attr string) string {
	return `CASE WHEN instr(document, '"` + attr + `":') > 0 THEN COALESCE(CAST(json_extract(document, '$.attributes."` +
		attr + `"') AS TEXT), '') ELSE '' END`
}

// CountEvents implements store.Aggregator with one GROUP BY query.
func (s *Store) CountEvents(ctx context.Context, q store.EventQuery, by ...store.GroupKey) ([]store.Bucket, error) {
	cols := make([]string, len(by))
	for i, k := range by {
		c, ok := groupColumns[k]
		if !ok {
			return nil, fmt.Errorf("sqlitestore: count events: unknown group key %q", k)
		}
		cols[i] = c
	}
	w := eventFilter(q)
	query := `SELECT COUNT(*) FROM events` + w.sql("", 0)
	if len(cols) > 0 {
		groups := make([]string, len(cols))
		for i := range cols {
			groups[i] = fmt.Sprint(i + 1)
		}
		query = `SELECT ` + strings.Join(cols, ", ") + `, COUNT(*) FROM events` + w.sql("GROUP BY "+strings.Join(groups, ", "), 0)
	}
	conn, err := s.aggregationConn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.release()
	rows, err := conn.QueryContext(ctx, query, w.args...)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: count events: %w", err)
	}
	defer rows.Close()
	var out []store.Bucket
	for rows.Next() {
		b := store.Bucket{Keys: make([]string, len(by))}
		dst := make([]any, 0, len(by)+1)
		for i := range b.Keys {
			dst = append(dst, &b.Keys[i])
		}
		if err := rows.Scan(append(dst, &b.Count)...); err != nil {
			return nil, fmt.Errorf("sqlitestore: count events: %w", err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: count events: %w", err)
	}
	store.SortBuckets(out)
	return out, nil
}

// aggConn is a pooled connection set up for one large GROUP BY, with the
// settings to restore.
type aggConn struct {
	*sql.Conn
	tempStore, cacheSize int64
}

// aggregationCacheKiB bounds the page cache, and so the in-memory part of
// the sorter, of an aggregation.
const aggregationCacheKiB = 16384

// aggregationConn takes a connection and lets its sorter spill to a
// temporary file with a smaller cache: a GROUP BY over a million events
// otherwise sorts them all in memory (hundreds of MiB). release restores
// the connection's settings (the write path wants them in memory) or, if
// that fails, drops the connection from the pool.
func (s *Store) aggregationConn(ctx context.Context) (*aggConn, error) {
	c, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: count events: %w", err)
	}
	a := &aggConn{Conn: c}
	if err := c.QueryRowContext(ctx, `PRAGMA temp_store`).Scan(&a.tempStore); err == nil {
		err = c.QueryRowContext(ctx, `PRAGMA cache_size`).Scan(&a.cacheSize)
	}
	if err == nil {
		_, err = c.ExecContext(ctx, `PRAGMA temp_store = FILE`)
	}
	if err == nil && (a.cacheSize >= 0 || -a.cacheSize > aggregationCacheKiB) {
		_, err = c.ExecContext(ctx, fmt.Sprintf(`PRAGMA cache_size = -%d`, aggregationCacheKiB))
	}
	if err != nil {
		_ = c.Raw(func(any) error { return driver.ErrBadConn })
		_ = c.Close()
		return nil, fmt.Errorf("sqlitestore: count events: %w", err)
	}
	return a, nil
}

func (c *aggConn) release() {
	for _, p := range []string{fmt.Sprintf(`PRAGMA temp_store = %d`, c.tempStore), fmt.Sprintf(`PRAGMA cache_size = %d`, c.cacheSize)} {
		if _, err := c.ExecContext(context.Background(), p); err != nil {
			_ = c.Raw(func(any) error { return driver.ErrBadConn })
			break
		}
	}
	_ = c.Close()
}

// ForReports bounds the memory of a store opened to read large reports:
// one connection with a 16 MiB page cache instead of up to four of 64 MiB
// (the writer's setting). Call it right after Open, before any query.
func (s *Store) ForReports(ctx context.Context) error {
	s.db.SetMaxOpenConns(1)
	s.db.SetMaxIdleConns(1)
	if _, err := s.db.ExecContext(ctx, fmt.Sprintf(`PRAGMA cache_size = -%d`, aggregationCacheKiB)); err != nil {
		return fmt.Errorf("sqlitestore: %w", err)
	}
	return nil
}

// CountDeadLetters implements store.Aggregator.
func (s *Store) CountDeadLetters(ctx context.Context, from, to time.Time) ([]store.DeadLetterCount, error) {
	var w where
	w.period("time", from, to)
	rows, err := s.db.QueryContext(ctx, `SELECT stream, SUM(kind != 'gap'), SUM(kind != 'gap' AND substr(reason, 1, ?) = ?), SUM(kind = 'gap') FROM dead_letters`+
		w.sql("GROUP BY stream ORDER BY stream", 0),
		append([]any{len(store.ConflictReasonPrefix), store.ConflictReasonPrefix}, w.args...)...)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: count dead letters: %w", err)
	}
	defer rows.Close()
	var out []store.DeadLetterCount
	for rows.Next() {
		var c store.DeadLetterCount
		if err := rows.Scan(&c.Stream, &c.DeadLetters, &c.Conflicts, &c.Gaps); err != nil {
			return nil, fmt.Errorf("sqlitestore: count dead letters: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// EventsWithValue implements store.Aggregator: a substring scan of the
// documents for the value's JSON form narrows the rows, then the record
// data of each candidate is checked exactly.
func (s *Store) EventsWithValue(ctx context.Context, q store.EventQuery, value string) ([]store.StoredEvent, error) {
	needle, err := canonical.Marshal(value)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: events with value: %w", err)
	}
	w := eventFilter(q)
	w.add("instr(document, ?) > 0", string(needle))
	var out []store.StoredEvent
	err = s.eachEvent(ctx, w, 0, func(e *store.StoredEvent) error {
		if store.HasValue(&e.Event, value) && (q.Limit == 0 || len(out) < q.Limit) {
			out = append(out, *e)
		}
		return nil
	})
	return out, err
}
