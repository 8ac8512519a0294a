package reports

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/store"
)

// sox builds the SOX ITGC report: computer operations, data-transfer
// completeness, change management, access, exceptions and sign-off.
func (b *builder) sox() error {
	observed, err := b.observed()
	if err != nil {
		return err
	}
	if err := b.loadFindings(); err != nil {
		return err
	}
	ops, runsPerDay := b.operationsTables()
	transfer, unbalanced := b.transferTable()
	steps, err := b.stepsTable()
	if err != nil {
		return err
	}
	changes, err := b.changesPerDatasetTable()
	if err != nil {
		return err
	}
	findings := b.findingsTable()
	findingsPerDay := b.findingsPerDayTable()
	changeMgmt, err := b.changeManagementTable()
	if err != nil {
		return err
	}
	access := b.accessTable()
	failedOps := b.failedOperationsTable(observed)
	exceptions := b.exceptionsTable(unbalanced)

	var read, written, skipped, errored, ok, fail int64
	for _, r := range b.runs {
		read, written, skipped, errored = read+r.Read, written+r.Written, skipped+r.Skipped, errored+r.Errored
		switch {
		case r.Status == auditevent.ResultSuccess:
			ok++
		case failed(r.Status):
			fail++
		}
	}
	c := b.rep.Completeness
	b.rep.Summary = []Metric{
		metric("runs", "Runs", c.Runs),
		metric("runs_succeeded", "Runs succeeded", ok),
		metric("runs_failed", "Runs failed", fail),
		metric("runs_unended", "Runs not ended", c.RunsUnended),
		metric("records_read", "Records read", read),
		metric("records_written", "Records written", written),
		metric("records_skipped", "Records skipped", skipped),
		metric("records_errored", "Records errored", errored),
		metric("runs_unbalanced", "Runs whose counts do not reconcile", unbalanced),
		metric("findings", "Findings", int64(len(b.findings))),
		metric("findings_high", "Findings of high or critical severity", countHigh(b.findings)),
		metric("dead_letters", "Dead letters", c.DeadLetters),
		metric("integrity_alarms", "Integrity alarms", c.IntegrityAlarms),
		metric("exceptions", "Exceptions", exceptions.Total),
	}
	b.rep.Sections = []Section{
		{ID: "operations", Title: "Computer operations", Text: []string{
			"Every run that started in the period: who ran it, how it was triggered, when, how long, and its outcome. " +
				"Attempt counts runs of the same job under the same parent run (retries).",
		}, Tables: []Table{ops, runsPerDay}, Charts: []Chart{{ID: "runs_per_day_chart", Title: "Runs per day by status", Table: runsPerDay.ID, X: "day", Series: "status", Value: "runs"}}},
		{ID: "transfer", Title: "Data-transfer completeness", Text: []string{
			"Per run: records read must equal written + skipped + errored (the job's control totals, or the counted record events). " +
				"Per step: records each transformation step processed. Findings are the collector's reconciliation results " +
				"(data loss, checksum breaks, count mismatches); the event model has no resolution events, so every finding is open.",
		}, Tables: []Table{transfer, steps, changes, findings, findingsPerDay}, Charts: []Chart{
			{ID: "changes_per_dataset_chart", Title: "Records changed per dataset", Table: changes.ID, X: "dataset", Series: "change", Value: "records"},
			{ID: "findings_per_day_chart", Title: "Findings over time", Table: findingsPerDay.ID, X: "day", Series: "type", Value: "findings"},
		}},
		{ID: "change_management", Title: "Change management", Text: []string{
			"Changes between consecutive runs of each job: its code version (batchaudit.job.version) and configuration hash " +
				"(batchaudit.job.config_hash) from the batch start, who ran it, its namespace, and the datasets it read and wrote. " +
				"A run is compared with the job's previous run, also when that one started before the period; a run that does not " +
				"report a version or configuration hash is not compared on it. Run by is the actor the job names; principals are " +
				"who the collector authenticated as the sender of its events. Approvals and change tickets are not in the trail.",
		}, Tables: []Table{changeMgmt}},
		{ID: "access", Title: "Access", Text: []string{
			"Actors (people and service accounts) that read or wrote each dataset, and runs with failed or denied operations.",
		}, Tables: []Table{access, failedOps}},
		{ID: "exceptions", Title: "Exceptions", Tables: []Table{exceptions}},
		signOff(),
	}
	return nil
}

// operationsTables lists every run and counts runs per day and status.
func (b *builder) operationsTables() (Table, Table) {
	attempts := map[string]int{}
	var rows [][]any
	perDay := map[string]int64{}
	for _, r := range b.runs {
		attempt := 1
		if r.ParentBatchID != "" {
			k := r.JobName + "\x00" + r.ParentBatchID
			attempts[k]++
			attempt = attempts[k]
		}
		end, dur := "", any("")
		if !r.End.IsZero() {
			end, dur = fmtTime(r.End), r.Duration
		}
		rows = append(rows, []any{r.BatchID, r.JobName, r.JobNamespace, r.Actor.ID, r.Actor.Type, r.RunType, r.ParentBatchID,
			fmtTime(r.Start), end, dur, r.Status, int64(attempt)})
		perDay[keys(day(r.Start), r.Status)]++
	}
	var dayRows [][]any
	for _, k := range sortedKeys(perDay) {
		day, status, _ := strings.Cut(k, "\x00")
		dayRows = append(dayRows, []any{day, status, perDay[k]})
	}
	return newTable("runs", "Runs", []string{"batch_id", "job", "namespace", "actor", "actor_type", "run_type", "parent_batch_id",
			"start", "end", "duration_seconds", "status", "attempt"}, rows, 0),
		newTable("runs_per_day", "Runs per day by status", []string{"day", "status", "runs"}, dayRows, 0)
}

// balance is read - written - skipped - errored: 0 when a run reconciles.
func balance(r *store.Run) int64 { return r.Read - r.Written - r.Skipped - r.Errored }

// transferTable is the per-run completeness and the number of runs that do
// not reconcile.
func (b *builder) transferTable() (Table, int64) {
	findings := map[string]int64{}
	for _, f := range b.findings {
		findings[f.BatchID]++
	}
	var rows [][]any
	var unbalanced int64
	for _, r := range b.runs {
		bal := balance(&r)
		reconciled := bal == 0 && findings[r.BatchID] == 0 && r.Status != "running"
		if bal != 0 {
			unbalanced++
		}
		rows = append(rows, []any{r.BatchID, r.JobName, r.Read, r.Written, r.Skipped, r.Errored, bal,
			r.Inserted, r.Updated, r.Deleted, r.Unchanged, findings[r.BatchID], yesNo(reconciled)})
	}
	return newTable("transfer", "Records per run", []string{"batch_id", "job", "read", "written", "skipped", "errored",
		"unaccounted", "inserted", "updated", "deleted", "unchanged", "findings", "reconciled"}, rows, 0), unbalanced
}

// stepsTable counts the records each transformation step processed.
func (b *builder) stepsTable() (Table, error) {
	sums, err := b.sumCounts(func(c *runCount) string { return keys(c.batch, c.transform) }, auditevent.RecordTransform)
	if err != nil {
		return Table{}, err
	}
	var rows [][]any
	for k, n := range sums {
		p := strings.Split(k, "\x00")
		rows = append(rows, []any{p[0], b.selected[p[0]].JobName, p[1], n})
	}
	sortRows(rows, b.runOrder())
	return newTable("steps", "Records per transformation step", []string{"batch_id", "job", "step", "records"}, rows, 0), nil
}

// changesPerDatasetTable counts inserts, updates, deletes and unchanged
// writes per target dataset.
func (b *builder) changesPerDatasetTable() (Table, error) {
	sums, err := b.sumCounts(func(c *runCount) string { return keys(c.target, c.change) }, auditevent.RecordWrite, auditevent.RecordDelete)
	if err != nil {
		return Table{}, err
	}
	var rows [][]any
	for _, k := range sortedKeys(sums) {
		ds, change, _ := strings.Cut(k, "\x00")
		if change == "" {
			change = "unclassified"
		}
		rows = append(rows, []any{ds, change, sums[k]})
	}
	return newTable("changes_per_dataset", "Records changed per dataset", []string{"dataset", "change", "records"}, rows, 0), nil
}

// findingsTable lists the findings of the covered runs.
func (b *builder) findingsTable() Table {
	var rows [][]any
	for _, f := range b.findings {
		rows = append(rows, []any{fmtTime(f.Time), f.BatchID, f.JobName, f.FindingType, f.FindingSeverity,
			strings.Join(f.FindingRecords, " "), f.FindingMessage, "open"})
	}
	return newTable("findings", "Findings", []string{"time", "batch_id", "job", "type", "severity", "record_ids", "message", "state"}, rows, 0)
}

// findingsPerDayTable counts the findings per UTC day and type.
func (b *builder) findingsPerDayTable() Table {
	sums := map[string]int64{}
	for _, f := range b.findings {
		sums[keys(day(f.Time), f.FindingType)]++
	}
	var rows [][]any
	for _, k := range sortedKeys(sums) {
		d, typ, _ := strings.Cut(k, "\x00")
		rows = append(rows, []any{d, typ, sums[k]})
	}
	return newTable("findings_per_day", "Findings per day by type", []string{"day", "type", "findings"}, rows, 0)
}

// day is the UTC date of t, as store.ByDay groups ("" before 1970).
func day(t time.Time) string {
	if t.UnixNano() <= 0 {
		return ""
	}
	return t.UTC().Format(time.DateOnly)
}

// changeManagementTable compares each run of the report with the previous
// run of its job: its job version and configuration hash by
// store.RunChanges (the one rule, shared with batchaudit runs --changes),
// then who ran it and what it touched. The latest run of each job before
// the period is read too, so the period's first run is compared as well.
func (b *builder) changeManagementTable() (Table, error) {
	q := store.RunQuery{To: b.req.From, JobName: b.req.Filters.Job, ActorID: b.req.Filters.Actor, Latest: true}
	before, err := b.g.Source.Runs(b.ctx, q)
	if err != nil {
		return Table{}, fmt.Errorf("reports: runs before the period: %w", err)
	}
	b.record("each job's latest run before the period (change management compares the period's first run with it)", "Runs",
		map[string]any{"to": timeParam(q.To), "job_name": q.JobName, "actor_id": q.ActorID, "latest": true}, len(before))
	// Latest orders by job name; every one started before the period's runs.
	slices.SortFunc(before, func(x, y store.Run) int { return cmp.Or(x.Start.Compare(y.Start), cmp.Compare(x.BatchID, y.BatchID)) })
	runs := append(before, b.jobRuns...)
	versions := map[string]store.RunChange{}
	for _, c := range store.RunChanges(runs) {
		versions[c.BatchID] = c
	}
	prev := map[string]*store.Run{}
	var rows [][]any
	for i := range runs {
		r := &runs[i]
		p := prev[r.JobName]
		prev[r.JobName] = r
		if p == nil || b.selected[r.BatchID] == nil {
			continue
		}
		row := func(what, was, is, previous string) {
			rows = append(rows, []any{r.JobName, r.BatchID, fmtTime(r.Start), what, was, is, previous,
				r.Actor.ID, strings.Join(r.Principals, " ")})
		}
		if c, ok := versions[r.BatchID]; ok {
			for _, what := range c.Changed {
				switch what {
				case "job_version":
					row(what, c.Previous.JobVersion, r.JobVersion, c.Previous.BatchID)
				case "config_hash":
					row(what, c.Previous.ConfigHash, r.ConfigHash, c.Previous.BatchID)
				}
			}
		}
		diff := func(what, was, is string) {
			if was != is {
				row(what, was, is, p.BatchID)
			}
		}
		diff("actor", p.Actor.ID, r.Actor.ID)
		diff("namespace", p.JobNamespace, r.JobNamespace)
		diff("sources", sortedJoin(p.Sources), sortedJoin(r.Sources))
		diff("targets", sortedJoin(p.Targets), sortedJoin(r.Targets))
	}
	return newTable("changes", "Changes between consecutive runs of a job", []string{"job", "batch_id", "start", "changed",
		"before", "after", "previous_batch_id", "run_by", "principals"}, rows, 0), nil
}

func sortedJoin(l []string) string {
	c := slices.Clone(l)
	slices.Sort(c)
	return strings.Join(c, " ")
}

// accessTable lists who read and wrote each dataset.
func (b *builder) accessTable() Table {
	type acc struct {
		runs        int64
		first, last string
	}
	m := map[string]*acc{}
	for _, r := range b.runs {
		for _, d := range []struct {
			role string
			l    []string
		}{{"read", r.Sources}, {"write", r.Targets}} {
			for _, ds := range d.l {
				k := strings.Join([]string{ds, d.role, r.Actor.ID, r.Actor.Type}, "\x00")
				a := m[k]
				if a == nil {
					a = &acc{first: fmtTime(r.Start)}
					m[k] = a
				}
				a.runs++
				a.last = fmtTime(r.Start)
			}
		}
	}
	var rows [][]any
	for _, k := range sortedKeys(m) {
		p := strings.Split(k, "\x00")
		rows = append(rows, []any{p[0], p[1], p[2], p[3], m[k].runs, m[k].first, m[k].last})
	}
	return newTable("access", "Actors per dataset", []string{"dataset", "access", "actor", "actor_type", "runs", "first_run", "last_run"}, rows, 0)
}

// failedOperationsTable lists runs that failed or had record errors or
// failed validations.
func (b *builder) failedOperationsTable(observed map[string]map[string]int64) Table {
	var rows [][]any
	for _, r := range b.runs {
		o := observed[r.BatchID]
		errs, vfail := o[auditevent.RecordError], o[auditevent.ValidationFail]
		if !failed(r.Status) && errs == 0 && vfail == 0 {
			continue
		}
		rows = append(rows, []any{r.BatchID, r.JobName, r.Actor.ID, r.Status, errs, vfail})
	}
	return newTable("failed_operations", "Failed or denied operations", []string{"batch_id", "job", "actor", "status", "record_errors", "validation_failures"}, rows, 0)
}

// exceptionsTable gathers what a reviewer must look at.
func (b *builder) exceptionsTable(unbalanced int64) Table {
	var rows [][]any
	for _, r := range b.runs {
		switch {
		case r.Status == "running":
			rows = append(rows, []any{"run_not_ended", r.BatchID, fmt.Sprintf("%s started %s and has not ended", r.JobName, fmtTime(r.Start))})
		case failed(r.Status):
			rows = append(rows, []any{"run_failed", r.BatchID, fmt.Sprintf("%s ended with %s", r.JobName, r.Status)})
		}
		if bal := balance(&r); bal != 0 {
			rows = append(rows, []any{"counts_unreconciled", r.BatchID, fmt.Sprintf("read %d, written %d + skipped %d + errored %d: %d unaccounted", r.Read, r.Written, r.Skipped, r.Errored, bal)})
		}
	}
	for _, f := range b.findings {
		rows = append(rows, []any{"finding_" + f.FindingType, f.BatchID, f.FindingSeverity + ": " + f.FindingMessage})
	}
	c := b.rep.Completeness
	if c.DeadLetters > 0 {
		rows = append(rows, []any{"dead_letters", "", fmt.Sprintf("%d event(s) of the period could not be kept as audit events", c.DeadLetters)})
	}
	if c.IntegrityAlarms > 0 {
		rows = append(rows, []any{"integrity_alarms", "", fmt.Sprintf("%d event id(s) re-sent with different content", c.IntegrityAlarms)})
	}
	return newTable("exceptions", "Exceptions", []string{"exception", "reference", "detail"}, rows, 0)
}

// signOff is the review block a person completes.
func signOff() Section {
	return Section{ID: "signoff", Title: "Review and sign-off", Text: []string{
		"The reviewer confirms that the exceptions above were investigated and resolved or accepted.",
	}, Tables: []Table{newTable("signoff", "Sign-off", []string{"role", "name", "date", "signature"},
		[][]any{{"Reviewer", "", "", ""}, {"Approver", "", "", ""}}, 0)}}
}

func countHigh(findings []store.StoredEvent) int64 {
	var n int64
	for _, f := range findings {
		if f.FindingSeverity == auditevent.SeverityHigh || f.FindingSeverity == auditevent.SeverityCritical {
			n++
		}
	}
	return n
}

// runOrder maps batch ids to their position in the run list (start order).
func (b *builder) runOrder() map[string]int {
	m := make(map[string]int, len(b.runs))
	for i, r := range b.runs {
		m[r.BatchID] = i
	}
	return m
}

// sortRows orders rows whose first cell is a batch id by run order, then
// by the remaining cells as text.
func sortRows(rows [][]any, order map[string]int) {
	slices.SortStableFunc(rows, func(x, y []any) int {
		if c := order[x[0].(string)] - order[y[0].(string)]; c != 0 {
			return c
		}
		return strings.Compare(rowText(x[1:]), rowText(y[1:]))
	})
}

// rowText is a row's cells as text, for ordering.
func rowText(r []any) string {
	parts := make([]string, len(r))
	for i, c := range r {
		parts[i] = cellText(c)
	}
	return strings.Join(parts, "\x00")
}
