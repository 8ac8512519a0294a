package reports

import (
	"fmt"
	"slices"
	"strings"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/store"
)

// hipaa builds the HIPAA 164.312(b) activity report on the datasets the
// catalog tags as ePHI: who read, created, modified, exported or deleted
// which records, with the outcome, and a review block.
func (b *builder) hipaa() error {
	reads, err := b.sumCounts(func(c *runCount) string { return keys(c.batch, c.source) }, auditevent.RecordRead)
	if err != nil {
		return err
	}
	writes, err := b.sumCounts(func(c *runCount) string { return keys(c.batch, c.target, c.name, c.change) },
		auditevent.RecordWrite, auditevent.RecordDelete)
	if err != nil {
		return err
	}
	ephi := func(ds string) bool {
		e := b.g.Catalog.Match(ds)
		return e != nil && e.EPHI
	}
	type key struct{ dataset, actor, actorType, action, outcome string }
	type agg struct {
		records int64
		runs    map[string]bool
	}
	acts := map[key]*agg{}
	add := func(batch, ds, action string, n int64) {
		r := b.selected[batch]
		k := key{ds, r.Actor.ID, r.Actor.Type, action, r.Status}
		a := acts[k]
		if a == nil {
			a = &agg{runs: map[string]bool{}}
			acts[k] = a
		}
		a.records += n
		a.runs[batch] = true
	}
	ephiRead := map[string][]string{} // batch → ePHI datasets read
	datasets := map[string]bool{}
	for _, k := range sortedKeys(reads) {
		batch, ds, _ := strings.Cut(k, "\x00")
		if ephi(ds) {
			add(batch, ds, "read", reads[k])
			ephiRead[batch] = append(ephiRead[batch], ds)
			datasets[ds] = true
		}
	}
	exported := map[[3]string]int64{} // (batch, ePHI source, target) → records written
	for k, n := range writes {
		p := strings.Split(k, "\x00")
		batch, ds, name, change := p[0], p[1], p[2], p[3]
		if ephi(ds) {
			add(batch, ds, writeAction(name, change), n)
			datasets[ds] = true
			continue
		}
		// Written (not deleted) outside ePHI by a run that read ePHI: an export.
		if name != auditevent.RecordWrite {
			continue
		}
		for _, src := range ephiRead[batch] {
			exported[[3]string{batch, src, ds}] += n
		}
	}
	var exports [][]any
	for k, n := range exported {
		r := b.selected[k[0]]
		exports = append(exports, []any{k[0], r.JobName, r.Actor.ID, k[1], k[2], n, r.Status})
	}
	var rows [][]any
	var total int64
	for k, a := range acts {
		rows = append(rows, []any{k.dataset, k.actor, k.actorType, k.action, k.outcome, a.records, int64(len(a.runs))})
		total += a.records
	}
	sortAny(rows)
	sortRows(exports, b.runOrder())

	// Record-level accesses, per ePHI dataset.
	max := b.maxRows()
	var recRows [][]any
	for _, ds := range sortedKeys(datasets) {
		q := store.EventQuery{From: b.req.From, To: b.req.To, Dataset: ds,
			Names: []string{auditevent.RecordRead, auditevent.RecordWrite, auditevent.RecordDelete}, Limit: max + 1}
		evs, err := b.g.Source.Events(b.ctx, q)
		if err != nil {
			return fmt.Errorf("reports: ePHI record accesses: %w", err)
		}
		b.record("record accesses on an ePHI dataset", "Events", eventQueryParams(q), len(evs))
		for _, e := range evs {
			r, ok := b.selected[e.BatchID]
			if !ok || eventDataset(&e.Event) != ds && e.Source.String() != ds {
				continue
			}
			action := "read"
			if e.Name != auditevent.RecordRead {
				action = writeAction(e.Name, e.ChangeType)
			}
			recRows = append(recRows, []any{fmtTime(e.Time), e.BatchID, r.Actor.ID, action, ds, e.RecordID, r.Status})
		}
	}
	recTable := newTable("ephi_records", "Record-level activity", []string{"time", "batch_id", "actor", "action", "dataset", "record_id", "outcome"}, recRows, max)
	if recTable.Truncated {
		recTable.Total = total
		recTable.Note = fmt.Sprintf("%d of %d record accesses listed; narrow the period or the filters for the rest.", max, total)
	}
	var tagged []string
	for _, e := range b.g.Catalog.Datasets {
		if e.EPHI {
			tagged = append(tagged, e.Name)
		}
	}
	b.rep.Summary = []Metric{
		metric("runs", "Runs", b.rep.Completeness.Runs),
		metric("ephi_datasets", "ePHI datasets with activity", int64(len(datasets))),
		metric("ephi_records_accessed", "Record accesses on ePHI", total),
		metric("ephi_exports", "Runs exporting ePHI to datasets not tagged ePHI", int64(len(exports))),
	}
	b.rep.Sections = []Section{
		{ID: "activity", Title: "Activity on ePHI datasets (164.312(b))", Text: []string{
			"Datasets tagged ephi in the catalog: " + dash(strings.Join(tagged, ", ")) + ". " +
				"Actions: read; create, modify, write (unchanged) and delete from the change types; export = a run that read " +
				"ePHI wrote to a dataset not tagged ePHI. Outcome is the run's status.",
		}, Tables: []Table{
			newTable("ephi_activity", "Activity per dataset, actor and action", []string{"dataset", "actor", "actor_type", "action", "outcome", "records", "runs"}, rows, 0),
			newTable("ephi_exports", "Exports", []string{"batch_id", "job", "actor", "from_dataset", "to_dataset", "records", "outcome"}, exports, 0),
			recTable,
		}},
		{ID: "review", Title: "Review evidence", Text: []string{
			fmt.Sprintf("This report lists %d record accesses on ePHI in the period. The reviewer signs below after examining them.", total),
		}, Tables: []Table{signOff().Tables[0]}},
	}
	return nil
}

func writeAction(name, change string) string {
	if name == auditevent.RecordDelete {
		return "delete"
	}
	switch change {
	case auditevent.ChangeInsert:
		return "create"
	case auditevent.ChangeUpdate:
		return "modify"
	case auditevent.ChangeDelete:
		return "delete"
	}
	return "write"
}

// sortAny orders rows by their cells as text.
func sortAny(rows [][]any) {
	slices.SortFunc(rows, func(x, y []any) int { return strings.Compare(rowText(x), rowText(y)) })
}
