package store

import (
	"context"
	"time"
)

// ReportRecord is one generated report as the store remembers it, so that
// "which reports exist for Q3" is a query and a scheduler never produces
// the same period twice. ID is the report's deterministic id (kind,
// period and filters), so recording it again is harmless.
type ReportRecord struct {
	ID       string    `json:"id"`
	Kind     string    `json:"kind"`
	Schedule string    `json:"schedule,omitempty"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	// Filters are the report's filters as key=value text.
	Filters     string    `json:"filters,omitempty"`
	GeneratedAt time.Time `json:"generated_at"`
	// ContentSHA256 is the hash of the report's content (reports package).
	ContentSHA256 string `json:"content_sha256"`
	// Location is where the report's files were written.
	Location string   `json:"location"`
	Files    []string `json:"files,omitempty"`
	// Checkpoints are the signed checkpoints the report's integrity
	// attestation rests on, one per stream it covered: the next report of
	// the series proves its own checkpoints consistent with these.
	Checkpoints []ReportCheckpoint `json:"checkpoints,omitempty"`
}

// ReportCheckpoint is a signed checkpoint a recorded report used.
type ReportCheckpoint struct {
	Stream string `json:"stream"`
	Size   int64  `json:"size"`
	// Note is the signed note, verbatim.
	Note string `json:"note"`
}

// ReportQuery selects report records whose period overlaps [From, To);
// empty fields do not filter. Results are ordered by period start, then id.
type ReportQuery struct {
	From, To time.Time
	Kind     string
	Schedule string
}

// ReportIndex records generated reports. Backends create its table or
// index on first use.
type ReportIndex interface {
	// RecordReport stores r unless a report with its ID is already
	// recorded; created says which happened (the stored record is kept).
	RecordReport(ctx context.Context, r ReportRecord) (created bool, err error)
	Reports(ctx context.Context, q ReportQuery) ([]ReportRecord, error)
}
