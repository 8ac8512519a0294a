package reports

import (
	"fmt"
	"slices"
	"strings"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/store"
)

// lineage builds the lineage report for a record id (its chains from
// source through every step to target, across runs, its history and its
// findings) and/or a dataset (its upstream and downstream edges).
func (b *builder) lineage() error {
	if err := b.loadFindings(); err != nil {
		return err
	}
	var sections []Section
	var summary []Metric
	if id := b.req.Filters.Record; id != "" {
		sec, m, err := b.recordLineage(id)
		if err != nil {
			return err
		}
		sections, summary = append(sections, sec), append(summary, m...)
	}
	if ds := b.req.Filters.Dataset; ds != "" {
		sec, m, err := b.datasetLineage(ds)
		if err != nil {
			return err
		}
		sections, summary = append(sections, sec), append(summary, m...)
	}
	b.rep.Summary = append([]Metric{metric("runs", "Runs", b.rep.Completeness.Runs)}, summary...)
	b.rep.Sections = sections
	return nil
}

func (b *builder) recordLineage(id string) (Section, []Metric, error) {
	b.progress("reading the record's history")
	q := store.EventQuery{RecordID: id, From: b.req.From, To: b.req.To}
	evs, err := b.g.Source.Events(b.ctx, q)
	if err != nil {
		return Section{}, nil, fmt.Errorf("reports: record history: %w", err)
	}
	b.record("events about the record", "Events", eventQueryParams(q), len(evs))
	var chains, hist [][]any
	runs := map[string]bool{}
	for _, e := range evs {
		if _, ok := b.selected[e.BatchID]; !ok {
			continue
		}
		runs[e.BatchID] = true
		hist = append(hist, []any{fmtTime(e.Time), e.BatchID, e.JobName, shortName(e.Name), dash(e.Source.String()),
			dash(e.Target.String()), e.ChangeType, e.RecordHash})
		if e.Name != auditevent.LineageRecord {
			continue
		}
		c := e.LineageChain
		src, srcRec := chainEnd(c["source"])
		tgt, tgtRec := chainEnd(c["target"])
		if tgt == "-" {
			tgt, tgtRec = dash(e.Target.String()), e.RecordID
		}
		chains = append(chains, []any{fmtTime(e.Time), e.BatchID, e.JobName, e.LineageID, src, srcRec,
			chainSteps(c["steps"]), tgt, tgtRec, strings.Join(e.InputRecordIDs, " ")})
	}
	var found [][]any
	for _, f := range b.findings {
		if slices.Contains(f.FindingRecords, id) {
			found = append(found, []any{fmtTime(f.Time), f.BatchID, f.JobName, f.FindingType, f.FindingSeverity, f.FindingMessage})
		}
	}
	return Section{ID: "record", Title: "Lineage of record " + id, Text: []string{
			"Every chain the lineage processor derived for the record (one per write), across the runs of the period, " +
				"with its steps in order, and every event about the record. A record that was only an input of a join " +
				"appears in the parents column of the joined record's chain.",
		}, Tables: []Table{
			newTable("chains", "Chains", []string{"time", "batch_id", "job", "lineage_id", "source", "source_record", "steps", "target", "target_record", "parents"}, chains, 0),
			newTable("record_history", "History", []string{"time", "batch_id", "job", "event", "source", "target", "change", "record_hash"}, hist, b.maxRows()),
			newTable("record_findings", "Findings naming the record", []string{"time", "batch_id", "job", "type", "severity", "message"}, found, 0),
		}}, []Metric{
			metric("record_chains", "Chains of the record", int64(len(chains))),
			metric("record_runs", "Runs that touched the record", int64(len(runs))),
			metric("record_events", "Events about the record", int64(len(hist))),
			metric("record_findings", "Findings naming the record", int64(len(found))),
		}, nil
}

func (b *builder) datasetLineage(ds string) (Section, []Metric, error) {
	b.progress("reading dataset edges")
	q := store.EventQuery{Dataset: ds, From: b.req.From, To: b.req.To, Names: []string{auditevent.LineageDataset}}
	evs, err := b.g.Source.Events(b.ctx, q)
	if err != nil {
		return Section{}, nil, fmt.Errorf("reports: dataset edges: %w", err)
	}
	b.record("dataset lineage edges", "Events", eventQueryParams(q), len(evs))
	type edge struct {
		runs, records int64
	}
	up, down := map[string]*edge{}, map[string]*edge{}
	for _, e := range evs {
		if _, ok := b.selected[e.BatchID]; !ok {
			continue
		}
		k := e.Source.String() + "\x00" + e.JobName + "\x00" + e.Target.String()
		m := down
		if datasetIs(e.Target.String(), ds) {
			m = up
		}
		x := m[k]
		if x == nil {
			x = &edge{}
			m[k] = x
		}
		x.runs++
		if e.RecordCount != nil {
			x.records += *e.RecordCount
		}
	}
	rows := func(m map[string]*edge) [][]any {
		var out [][]any
		for _, k := range sortedKeys(m) {
			p := strings.Split(k, "\x00")
			out = append(out, []any{p[0], p[1], p[2], m[k].runs, m[k].records})
		}
		return out
	}
	var found [][]any
	for _, f := range b.findings {
		found = append(found, []any{fmtTime(f.Time), f.BatchID, f.JobName, f.FindingType, f.FindingSeverity, f.FindingMessage})
	}
	upRows, downRows := rows(up), rows(down)
	cols := []string{"source", "job", "target", "runs", "records"}
	return Section{ID: "dataset", Title: "Lineage of dataset " + ds, Text: []string{
			"Upstream: edges into the dataset; downstream: edges out of it; from the lineage processor's dataset events " +
				"(records = records that flowed along the edge, summed over runs).",
		}, Tables: []Table{
			newTable("upstream", "Upstream", cols, upRows, 0),
			newTable("downstream", "Downstream", cols, downRows, 0),
			newTable("dataset_findings", "Findings of the runs that touched the dataset", []string{"time", "batch_id", "job", "type", "severity", "message"}, found, 0),
		}}, []Metric{
			metric("upstream_edges", "Upstream edges", int64(len(upRows))),
			metric("downstream_edges", "Downstream edges", int64(len(downRows))),
		}, nil
}

// chainEnd reads a chain's source or target: the lineage processor writes
// {namespace, name, record_id, ...}; a job may send namespace/name text.
func chainEnd(v any) (dataset, recordID string) {
	switch t := v.(type) {
	case map[string]any:
		return dash(auditevent.Dataset{Namespace: str(t["namespace"]), Name: str(t["name"])}.String()), str(t["record_id"])
	case string:
		return dash(t), ""
	}
	return "-", ""
}

// chainSteps writes a chain's steps as "1 parse_amount > 2 convert_to_eur".
func chainSteps(v any) string {
	steps, _ := v.([]any)
	var parts []string
	for _, s := range steps {
		m, ok := s.(map[string]any)
		if !ok {
			parts = append(parts, str(s))
			continue
		}
		name := str(m["name"])
		if seq := str(m["sequence"]); seq != "" {
			name = seq + " " + name
		}
		parts = append(parts, name)
	}
	return strings.Join(parts, " > ")
}

func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}
