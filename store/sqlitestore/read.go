package sqlitestore

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/batchaudit/batchaudit/auditevent"
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

// Events implements store.Reader.
func (s *Store) Events(ctx context.Context, q store.EventQuery) ([]store.StoredEvent, error) {
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
	w.period("time", q.From, q.To)
	rows, err := s.db.QueryContext(ctx, `SELECT stream, sequence, hash, document, ingested FROM events`+
		w.sql("ORDER BY time, sequence", q.Limit), w.args...)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: query events: %w", err)
	}
	defer rows.Close()
	var out []store.StoredEvent
	for rows.Next() {
		var se store.StoredEvent
		var doc []byte
		var ingested int64
		if err := rows.Scan(&se.Stream, &se.Sequence, &se.Hash, &doc, &ingested); err != nil {
			return nil, fmt.Errorf("sqlitestore: read event: %w", err)
		}
		if se.Event, err = auditevent.ParseCanonical(doc); err != nil {
			return nil, fmt.Errorf("sqlitestore: stream %s sequence %d: %w", se.Stream, se.Sequence, err)
		}
		se.Ingested = fromNanos(ingested)
		out = append(out, se)
	}
	return out, rows.Err()
}

// Runs implements store.Reader; the period applies to a run's start.
func (s *Store) Runs(ctx context.Context, q store.RunQuery) ([]store.Run, error) {
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
	w.period("start", q.From, q.To)
	rows, err := s.db.QueryContext(ctx, `SELECT summary FROM runs`+w.sql("ORDER BY start, batch_id", q.Limit), w.args...)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: query runs: %w", err)
	}
	defer rows.Close()
	var out []store.Run
	for rows.Next() {
		var summary []byte
		if err := rows.Scan(&summary); err != nil {
			return nil, fmt.Errorf("sqlitestore: read run: %w", err)
		}
		var r store.Run
		if err := json.Unmarshal(summary, &r); err != nil {
			return nil, fmt.Errorf("sqlitestore: run summary: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// DeadLetters implements store.Reader.
func (s *Store) DeadLetters(ctx context.Context, from, to time.Time, limit int) ([]store.DeadLetter, error) {
	var w where
	w.period("time", from, to)
	rows, err := s.db.QueryContext(ctx, `SELECT event_id, stream, sequence, hash, reason, document, time FROM dead_letters`+
		w.sql("ORDER BY time, stream, sequence", limit), w.args...)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: query dead letters: %w", err)
	}
	defer rows.Close()
	var out []store.DeadLetter
	for rows.Next() {
		var d store.DeadLetter
		var t int64
		if err := rows.Scan(&d.EventID, &d.Stream, &d.Sequence, &d.Hash, &d.Reason, &d.Document, &t); err != nil {
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
