package reports

import (
	"fmt"
	"strings"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/merkle"
)

// reconciliation builds the data-loss report: counts in, out and rejected
// per run and dataset, gaps, checksum breaks, unended runs, dead letters
// and integrity alarms.
func (b *builder) reconciliation() error {
	observed, err := b.observed()
	if err != nil {
		return err
	}
	in, err := b.sumCounts(func(c *runCount) string { return keys(c.batch, c.source) }, auditevent.RecordRead)
	if err != nil {
		return err
	}
	out, err := b.sumCounts(func(c *runCount) string { return keys(c.batch, c.target, c.name) }, auditevent.RecordWrite, auditevent.RecordDelete)
	if err != nil {
		return err
	}
	if err := b.loadFindings(); err != nil {
		return err
	}
	findingsByRun := map[string]map[string]int64{}
	for _, f := range b.findings {
		if findingsByRun[f.BatchID] == nil {
			findingsByRun[f.BatchID] = map[string]int64{}
		}
		findingsByRun[f.BatchID][f.FindingType]++
	}

	var rows [][]any
	var recIn, recOut, recRej, gapTotal, withGap, reconciled int64
	for _, r := range b.runs {
		o, f := observed[r.BatchID], findingsByRun[r.BatchID]
		gap := balance(&r)
		rej := r.Skipped + r.Errored
		var nf int64
		for _, n := range f {
			nf += n
		}
		ok := gap == 0 && nf == 0 && r.Status != "running"
		if gap != 0 {
			withGap++
		}
		if ok {
			reconciled++
		}
		recIn, recOut, recRej, gapTotal = recIn+r.Read, recOut+r.Written, recRej+rej, gapTotal+gap
		rows = append(rows, []any{r.BatchID, r.JobName, r.Status, r.Read, r.Written, rej, gap,
			o[auditevent.RecordRead], o[auditevent.RecordWrite], o[auditevent.RecordSkip], o[auditevent.RecordError],
			f[auditevent.FindingDataLoss], f[auditevent.FindingChecksumBreak], f[auditevent.FindingCountMismatch], yesNo(ok)})
	}
	perRunTable := newTable("reconciliation", "Counts per run", []string{"batch_id", "job", "status", "in", "out", "rejected", "gap",
		"read_events", "write_events", "skip_events", "error_events", "data_loss", "checksum_breaks", "count_mismatches", "reconciled"}, rows, 0)

	var dsRows [][]any
	for k, n := range in {
		p := strings.Split(k, "\x00")
		dsRows = append(dsRows, []any{p[0], b.selected[p[0]].JobName, dash(p[1]), "in", "read", n})
	}
	for k, n := range out {
		p := strings.Split(k, "\x00")
		dsRows = append(dsRows, []any{p[0], b.selected[p[0]].JobName, dash(p[1]), "out", strings.TrimPrefix(p[2], "batchaudit.record."), n})
	}
	sortRows(dsRows, b.runOrder())
	perDataset := newTable("datasets", "Records per run and dataset", []string{"batch_id", "job", "dataset", "direction", "operation", "records"}, dsRows, 0)

	var unended [][]any
	for _, r := range b.runs {
		if r.Status == "running" {
			unended = append(unended, []any{r.BatchID, r.JobName, fmtTime(r.Start), r.Events})
		}
	}
	unendedTable := newTable("unended_runs", "Runs without an end", []string{"batch_id", "job", "start", "events"}, unended, 0)

	dlTable, err := b.deadLetterTable()
	if err != nil {
		return err
	}
	var breaks, loss, mismatch int64
	for _, f := range b.findings {
		switch f.FindingType {
		case auditevent.FindingChecksumBreak:
			breaks++
		case auditevent.FindingDataLoss:
			loss++
		case auditevent.FindingCountMismatch:
			mismatch++
		}
	}
	c := b.rep.Completeness
	b.rep.Summary = []Metric{
		metric("runs", "Runs", c.Runs),
		metric("runs_reconciled", "Runs reconciled", reconciled),
		metric("runs_with_gap", "Runs with a gap", withGap),
		metric("records_in", "Records in", recIn),
		metric("records_out", "Records out", recOut),
		metric("records_rejected", "Records rejected (skipped + errored)", recRej),
		metric("records_gap", "Records unaccounted", gapTotal),
		metric("data_loss_findings", "Data-loss findings", loss),
		metric("checksum_breaks", "Checksum breaks", breaks),
		metric("count_mismatches", "Count mismatches", mismatch),
		metric("runs_unended", "Runs not ended", c.RunsUnended),
		metric("dead_letters", "Dead letters", c.DeadLetters),
		metric("integrity_alarms", "Integrity alarms", c.IntegrityAlarms),
	}
	b.rep.Sections = []Section{
		{ID: "runs", Title: "Counts per run", Text: []string{
			"in = records read, out = records written, rejected = skipped + errored, gap = in - out - rejected " +
				"(from the job's control totals, or the counted record events). The *_events columns are the record events " +
				"actually stored; findings are the lineage processor's.",
		}, Tables: []Table{perRunTable}},
		{ID: "datasets", Title: "Counts per dataset", Tables: []Table{perDataset}},
		{ID: "findings", Title: "Findings", Tables: []Table{b.findingsTable()}},
		{ID: "unended", Title: "Unended runs", Tables: []Table{unendedTable}},
		{ID: "dead_letters", Title: "Dead letters and integrity alarms", Text: []string{
			"Events the store could not keep as audit events, with the reason. An integrity alarm is an event id re-sent " +
				"with different content: the stored event was kept and the new content is here.",
		}, Tables: []Table{dlTable}},
		signOff(),
	}
	return nil
}

// deadLetterTable lists the dead letters of the period (all streams).
func (b *builder) deadLetterTable() (Table, error) {
	// Gaps are listed with the dead letters and left out below: asking
	// for that many more keeps them from taking the table's rows.
	limit := b.maxRows() + int(b.gaps)
	dls, err := b.g.Source.DeadLetters(b.ctx, b.req.From, b.req.To, limit)
	if err != nil {
		return Table{}, fmt.Errorf("reports: dead letters: %w", err)
	}
	b.record("dead letters of the period", "DeadLetters", map[string]any{"from": timeParam(b.req.From), "to": timeParam(b.req.To), "limit": int64(limit)}, len(dls))
	var rows [][]any
	for _, d := range dls {
		if d.Kind == merkle.KindGap {
			continue // a number that holds no event: no event was refused
		}
		rows = append(rows, []any{d.Stream, d.Sequence, fmtTime(d.Time), d.EventID, yesNo(strings.HasPrefix(d.Reason, store.ConflictReasonPrefix)), d.Reason})
	}
	t := newTable("dead_letters", "Dead letters", []string{"stream", "sequence", "time", "event_id", "integrity_alarm", "reason"}, rows, 0)
	if n := b.rep.Completeness.DeadLetters; n > t.Total {
		t.Total, t.Truncated = n, true
		t.Note = fmt.Sprintf("%d of %d dead letters listed.", len(rows), n)
	}
	return t, nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
