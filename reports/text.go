package reports

import (
	"fmt"
	"strings"
)

// Text is the report as plain text: the envelope line, completeness, every
// summary number, and every table row, one per line, cells separated by
// " | ". A report read back from its JSON form gives the same text, which
// is what the golden tests compare.
func (r *Report) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s attestation=%s\n", r.Envelope.ID, r.Envelope.Filters.String(), r.Attestation.Status)
	r.Attestation.text(&b)
	c := r.Completeness
	fmt.Fprintf(&b, "completeness runs=%d unended=%d events=%d dead_letters=%d integrity_alarms=%d closed=%v streams=%v\n",
		c.Runs, c.RunsUnended, c.Events, c.DeadLetters, c.IntegrityAlarms, c.PeriodClosed, c.EventsByStream)
	for _, m := range r.Summary {
		fmt.Fprintf(&b, "%s = %d\n", m.ID, m.Value)
	}
	for _, s := range r.Sections {
		for _, t := range s.Tables {
			fmt.Fprintf(&b, "-- %s (%d) %s\n", t.ID, t.Total, strings.Join(t.Columns, " | "))
			for _, row := range t.Rows {
				cells := make([]string, len(row))
				for i, v := range row {
					cells[i] = cellText(v)
				}
				fmt.Fprintf(&b, "   %s\n", strings.Join(cells, " | "))
			}
		}
	}
	return b.String()
}

// text writes the attestation: the previous report, the signature check,
// then per stream its numbers, statement, proof hashes and signed notes.
func (a *Attestation) text(b *strings.Builder) {
	prev := "none"
	if a.Previous != nil {
		prev = fmt.Sprintf("%s (%s .. %s, content %s)", a.Previous.ID, fmtTime(a.Previous.From), fmtTime(a.Previous.To), a.Previous.ContentSHA256)
	}
	fmt.Fprintf(b, "attestation previous=%s verification=%s keys=%s\n", prev, a.Verification.Status, strings.Join(a.Verification.Keys, ","))
	fmt.Fprintf(b, "  statement %s\n  verification %s\n", a.Statement, a.Verification.Statement)
	size := func(c *Checkpoint) string {
		if c == nil {
			return "-"
		}
		return fmt.Sprintf("%d root=%s", c.TreeSize, c.RootHash)
	}
	for _, s := range a.Streams {
		fmt.Fprintf(b, "attestation stream=%s entries=%d status=%s checkpoint=%s previous=%s proof=%d\n",
			s.Stream, s.Entries, s.Status, size(s.Checkpoint), size(s.Previous), len(s.ConsistencyProof))
		fmt.Fprintf(b, "  statement %s\n", s.Statement)
		for _, h := range s.ConsistencyProof {
			fmt.Fprintf(b, "  proof %s\n", h)
		}
		for _, c := range []struct {
			what string
			cp   *Checkpoint
		}{{"note", s.Checkpoint}, {"previous note", s.Previous}} {
			if c.cp == nil {
				continue
			}
			for _, line := range strings.SplitAfter(strings.TrimSuffix(c.cp.Note, "\n"), "\n") {
				fmt.Fprintf(b, "  %s %s\n", c.what, strings.TrimSuffix(line, "\n"))
			}
		}
	}
}
