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
