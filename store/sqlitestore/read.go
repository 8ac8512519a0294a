package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/batchaudit/batchaudit/store"
)

// where collects SQL conditions and their arguments.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

func (w *where) clone() where { return where{slices.Clone(w.conds), slices.Clone(w.args)} }

func (w *where) period(col string, from, to time.Time) {
	if !from.IsZero() {
		w.add(col+" >= ?", from.UnixNano())
	}
	if !to.IsZero() {
		w.add(col+" < ?", to.UnixNano())
	}
}

func (w *where) sql(orderLimit string, limit int) string {
	var b strings.Builder
	if len(w.conds) > 0 {
		b.WriteString(" WHERE ")
		b.WriteString(strings.Join(w.conds, " AND "))
	}
	b.WriteString(" ")
	b.WriteString(orderLimit)
	if limit > 0 {
		fmt.Fprintf(&b, " LIMIT %d", limit)
	}
	return b.String()
}

// pageSize is how many rows one query of EachEvent and EachRun reads; the
// next page continues after the last row's sort key (keyset paging), so no
// read transaction stays open while the caller works.
const pageSize = 1000

// pages reads a query page by page: query returns the SQL and arguments of
// the page after cursor (nil for the first), scan handles one row and returns
// its cursor. limit (0: none) caps the rows over all pages.
func (s *Store) pages(ctx context.Context, what string, limit int, query func(cursor []any, n int) (string, []any),
	scan func(rows *sql.Rows) ([]any, error)) error {
	var cursor []any
	seen := 0
	for {
		n := store.PageSize(limit, seen, pageSize)
		q, args := query(cursor, n)
		rows, err := s.db.QueryContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("sqlitestore: query %s: %w", what, err)
		}
		got := 0
		for rows.Next() {
			if cursor, err = scan(rows); err != nil {
				rows.Close()
				return err
			}
			got++
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("sqlitestore: read %s: %w", what, err)
		}
		seen += got
		if got < n || (limit > 0 && seen >= limit) {
			return nil
		}
	}
}

// Events implements store.Reader.
func (s *Store) Events(ctx context.Context, q store.EventQuery) ([]store.StoredEvent, error) {
	return store.Collect(ctx, s.EachEvent, q)
}

// EachEvent implements store.Reader.
func (s *Store) EachEvent(ctx context.Context, q store.EventQuery, fn func(*store.StoredEvent) error) error {
	return s.eachEvent(ctx, eventFilter(q), q.Limit, fn)
}

// eventFilter is the WHERE clause of an EventQuery (without its Limit),
// shared by EachEvent and the aggregations.
func eventFilter(q store.EventQuery) where {
	var w where
	if q.BatchID != "" {
		w.add("batch_id = ? AND batch_id <> ''", q.BatchID)
	}
	if q.RecordID != "" {
		w.add("record_id = ? AND record_id <> ''", q.RecordID)
	}
	if q.Dataset != "" {
		// Either the bare name or namespace/name, as a source or a target.
		// Only the names are indexed: the name of namespace/name is one of
		// the suffixes after a "/", so those narrow the search first.
		names := datasetNames(q.Dataset)
		in := "(?" + strings.Repeat(", ?", len(names)-1) + ")"
		w.add(`(source_name IN `+in+` AND source_name <> '' OR target_name IN `+in+` AND target_name <> '')`, append(names, names...)...)
		w.add(`(source_name = ? OR source = ? OR target_name = ? OR target = ?)`, q.Dataset, q.Dataset, q.Dataset, q.Dataset)
	}
	if len(q.Names) > 0 {
		w.add("name IN (?"+strings.Repeat(", ?", len(q.Names)-1)+")", toAny(q.Names)...)
	}
	for _, c := range [...]struct{ col, val string }{{"actor_id", q.ActorID}, {"lineage_id", q.LineageID},
		{"finding_type", q.FindingType}, {"change_type", q.ChangeType}} {
		if c.val != "" {
			w.add(c.col+" = ? AND "+c.col+" <> ''", c.val)
		}
	}
	w.period("time", q.From, q.To)
	return w
}

// eachEvent reads the events w selects, in time order, page by page.
func (s *Store) eachEvent(ctx context.Context, w where, limit int, fn func(*store.StoredEvent) error) error {
	var se store.StoredEvent
	return s.pages(ctx, "events", limit, func(cursor []any, n int) (string, []any) {
		page := w.clone()
		if cursor != nil {
			page.add("(time, sequence, id) > (?, ?, ?)", cursor...)
		}
		return `SELECT stream, sequence, hash, document, ingested, time, id FROM events` +
			page.sql("ORDER BY time, sequence, id", n), page.args
	}, func(rows *sql.Rows) ([]any, error) {
		var doc []byte
		var ingested, t int64
		se = store.StoredEvent{}
		if err := rows.Scan(&se.Stream, &se.Sequence, &se.Hash, &doc, &ingested, &t, &se.ID); err != nil {
			return nil, fmt.Errorf("sqlitestore: read event: %w", err)
		}
		cursor := []any{t, se.Sequence, se.ID}
		store.DecodeEvent(&se, doc)
		if se.Unreadable != "" {
			se.Time = fromNanos(t) // the event's place in the trail
		}
		se.Ingested = fromNanos(ingested)
		return cursor, fn(&se)
	})
}

// Runs implements store.Reader; the period applies to a run's start.
func (s *Store) Runs(ctx context.Context, q store.RunQuery) ([]store.Run, error) {
	return store.Collect(ctx, s.EachRun, q)
}

// EachRun implements store.Reader.
func (s *Store) EachRun(ctx context.Context, q store.RunQuery, fn func(*store.Run) error) error {
	var w where
	if q.JobName != "" {
		w.add("job_name = ?", q.JobName)
	}
	if q.Status != "" {
		w.add("status = ?", q.Status)
	}
	if q.ActorID != "" {
		w.add("actor_id = ?", q.ActorID)
	}
	if q.ParentBatchID != "" {
		w.add("parent_id = ? AND parent_id <> ''", q.ParentBatchID)
	}
	w.period("start", q.From, q.To)
	query := func(cursor []any, n int) (string, []any) {
		page := w.clone()
		if cursor != nil {
			page.add("(start, batch_id) > (?, ?)", cursor...)
		}
		return `SELECT summary, start, batch_id FROM runs` + page.sql("ORDER BY start, batch_id", n), page.args
	}
	if q.Latest {
		// The latest run of each job among the selected ones, by job name.
		query = func(cursor []any, n int) (string, []any) {
			args := slices.Clone(w.args)
			after := ""
			if cursor != nil {
				after, args = " AND job_name > ?", append(args, cursor[0])
			}
			return fmt.Sprintf(`SELECT summary, start, batch_id FROM (SELECT summary, start, batch_id, job_name,
				row_number() OVER (PARTITION BY job_name ORDER BY start DESC, batch_id DESC) AS latest
				FROM runs%s) WHERE latest = 1%s ORDER BY job_name LIMIT %d`, w.sql("", 0), after, n), args
		}
	}
	var r store.Run
	return s.pages(ctx, "runs", q.Limit, query, func(rows *sql.Rows) ([]any, error) {
		var summary []byte
		var start int64
		var id string
		if err := rows.Scan(&summary, &start, &id); err != nil {
			return nil, fmt.Errorf("sqlitestore: read run: %w", err)
		}
		if err := store.DecodeRun(summary, &r); err != nil {
			return nil, fmt.Errorf("sqlitestore: run summary: %w", err)
		}
		cursor := []any{start, id}
		if q.Latest {
			cursor = []any{r.JobName}
		}
		return cursor, fn(&r)
	})
}

// DeadLetters implements store.Reader.
func (s *Store) DeadLetters(ctx context.Context, from, to time.Time, limit int) ([]store.DeadLetter, error) {
	var w where
	w.period("time", from, to)
	rows, err := s.db.QueryContext(ctx, `SELECT event_id, stream, sequence, kind, hash, reason, document, time FROM dead_letters`+
		w.sql("ORDER BY time, stream, sequence", limit), w.args...)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: query dead letters: %w", err)
	}
	defer rows.Close()
	var out []store.DeadLetter
	for rows.Next() {
		var d store.DeadLetter
		var t int64
		if err := rows.Scan(&d.EventID, &d.Stream, &d.Sequence, &d.Kind, &d.Hash, &d.Reason, &d.Document, &t); err != nil {
			return nil, fmt.Errorf("sqlitestore: read dead letter: %w", err)
		}
		d.Time = fromNanos(t)
		out = append(out, d)
	}
	return out, rows.Err()
}

// datasetNames returns the names a dataset filter can mean: the whole string,
// and every part after a "/" (namespaces such as postgres://db:5432 contain
// slashes, so the split point is unknown) or after a ":" (a scheme-only
// namespace, as in file:/data/in.csv).
func datasetNames(d string) []any {
	out := []any{d}
	for i := 0; i < len(d); i++ {
		if (d[i] == '/' || d[i] == ':') && i+1 < len(d) {
			out = append(out, d[i+1:])
		}
	}
	return out
}

func toAny(l []string) []any {
	out := make([]any, len(l))
	for i, s := range l {
		out[i] = s
	}
	return out
}
