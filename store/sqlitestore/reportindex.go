package sqlitestore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/batchaudit/batchaudit/store"
)

var _ store.ReportIndex = (*Store)(nil)

// The reports table is additive (CREATE ... IF NOT EXISTS on every open),
// so databases written before it existed keep schema version 1.
func init() {
	schema = append(schema,
		`CREATE TABLE IF NOT EXISTS reports (
			id           TEXT PRIMARY KEY,
			kind         TEXT NOT NULL,
			schedule     TEXT NOT NULL,
			period_from  INTEGER NOT NULL,
			period_to    INTEGER NOT NULL,
			record       TEXT NOT NULL
		) WITHOUT ROWID`,
		`CREATE INDEX IF NOT EXISTS reports_period ON reports(period_from, period_to)`)
}

// RecordReport implements store.ReportIndex.
func (s *Store) RecordReport(ctx context.Context, r store.ReportRecord) (bool, error) {
	doc, err := json.Marshal(r)
	if err != nil {
		return false, fmt.Errorf("sqlitestore: encode report %s: %w", r.ID, err)
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO reports (id, kind, schedule, period_from, period_to, record)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING`, r.ID, r.Kind, r.Schedule, nanos(r.From), nanos(r.To), doc)
	if err != nil {
		return false, fmt.Errorf("sqlitestore: record report %s: %w", r.ID, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// Reports implements store.ReportIndex.
func (s *Store) Reports(ctx context.Context, q store.ReportQuery) ([]store.ReportRecord, error) {
	var w where
	if q.Kind != "" {
		w.add("kind = ?", q.Kind)
	}
	if q.Schedule != "" {
		w.add("schedule = ?", q.Schedule)
	}
	// Overlap with [From, To).
	if !q.From.IsZero() {
		w.add("period_to > ?", nanos(q.From))
	}
	if !q.To.IsZero() {
		w.add("period_from < ?", nanos(q.To))
	}
	rows, err := s.db.QueryContext(ctx, `SELECT record FROM reports`+w.sql("ORDER BY period_from, id", 0), w.args...)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: query reports: %w", err)
	}
	defer rows.Close()
	var out []store.ReportRecord
	for rows.Next() {
		var doc []byte
		var r store.ReportRecord
		if err := rows.Scan(&doc); err != nil {
			return nil, fmt.Errorf("sqlitestore: read report: %w", err)
		}
		if err := json.Unmarshal(doc, &r); err != nil {
			return nil, fmt.Errorf("sqlitestore: report record: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
