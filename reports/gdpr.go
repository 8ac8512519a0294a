package reports

import (
	"fmt"
	"slices"
	"strings"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/canonical"
	"github.com/batchaudit/batchaudit/store"
)

// gdpr builds the GDPR report: records of processing per dataset (Art. 30)
// from the catalog and the observed runs, a DSAR extract for one subject
// (Art. 15) and the erasure evidence for the subject's records (Art. 17).
func (b *builder) gdpr() error {
	writtenPer, err := b.sumCounts(func(c *runCount) string { return c.target }, auditevent.RecordWrite)
	if err != nil {
		return err
	}
	// Observed datasets: jobs and runs per dataset, from the run summaries.
	type use struct {
		jobs map[string]bool
		runs int64
	}
	observed := map[string]*use{}
	for _, r := range b.runs {
		for _, ds := range append(slices.Clone(r.Sources), r.Targets...) {
			u := observed[ds]
			if u == nil {
				u = &use{jobs: map[string]bool{}}
				observed[ds] = u
			}
			u.jobs[r.JobName] = true
			u.runs++
		}
	}
	var ropa, uncatalogued [][]any
	for i := range b.g.Catalog.Datasets {
		e := &b.g.Catalog.Datasets[i]
		var dss []string
		jobs := map[string]bool{}
		var runs, recs int64
		for _, ds := range sortedKeys(observed) {
			if b.g.Catalog.Match(ds) != e {
				continue
			}
			dss = append(dss, ds)
			for j := range observed[ds].jobs {
				jobs[j] = true
			}
			runs += observed[ds].runs
			recs += writtenPer[ds]
		}
		pattern := e.Name
		if e.Namespace != "" {
			pattern = e.Namespace + "/" + e.Name
		}
		ropa = append(ropa, []any{pattern, join(e.Purposes), join(e.DataCategories), join(e.SubjectCategories),
			join(e.Recipients), join(e.Transfers), e.ErasureLimit, strings.Join(dss, " "), strings.Join(sortedKeys(jobs), " "), runs, recs})
	}
	for _, ds := range sortedKeys(observed) {
		if b.g.Catalog.Match(ds) == nil {
			uncatalogued = append(uncatalogued, []any{ds, strings.Join(sortedKeys(observed[ds].jobs), " "), observed[ds].runs, writtenPer[ds]})
		}
	}
	ropaText := []string{"Per catalogued dataset: the declared purposes, categories, recipients, transfers and erasure time limits " +
		"(dataset catalog), and the processing observed in the period."}
	if b.g.Catalog.Controller != "" {
		ropaText = append(ropaText, "Controller: "+b.g.Catalog.Controller)
	}
	sections := []Section{
		{ID: "ropa", Title: "Records of processing (Art. 30)", Text: ropaText, Tables: []Table{
			newTable("ropa", "Processing per dataset", []string{"dataset", "purposes", "data_categories", "subject_categories",
				"recipients", "transfers", "erasure_limit", "observed_datasets", "jobs", "runs", "records_written"}, ropa, 0),
			newTable("uncatalogued", "Datasets processed but not in the catalog", []string{"dataset", "jobs", "runs", "records_written"}, uncatalogued, 0),
		}},
	}
	summary := []Metric{
		metric("runs", "Runs", b.rep.Completeness.Runs),
		metric("catalogued_datasets", "Catalog entries", int64(len(b.g.Catalog.Datasets))),
		metric("uncatalogued_datasets", "Datasets processed but not catalogued", int64(len(uncatalogued))),
	}
	dsar, erasure, m, err := b.dsar()
	if err != nil {
		return err
	}
	sections = append(sections, dsar, erasure, signOff())
	b.rep.Summary = append(summary, m...)
	b.rep.Sections = sections
	return nil
}

// subjectRecord is one record of the data subject.
type subjectRecord struct {
	dataset, recordID string
}

// dsar finds the subject's records through the catalog's subject fields
// and returns the DSAR extract and the erasure evidence.
func (b *builder) dsar() (Section, Section, []Metric, error) {
	dsarSec := Section{ID: "dsar", Title: "Data subject access (Art. 15)"}
	eraseSec := Section{ID: "erasure", Title: "Erasure evidence (Art. 17)"}
	if b.req.Subject == "" {
		dsarSec.Text = []string{"No data subject was given (--subject): no extract."}
		eraseSec.Text = []string{"No data subject was given: no erasure evidence."}
		dsarSec.Tables, eraseSec.Tables = []Table{}, []Table{}
		return dsarSec, eraseSec, nil, nil
	}
	ref := b.rep.Envelope.Filters.Subject
	dsarSec.Text = []string{"Subject " + ref + " (keyed pseudonym of the identifier; the identifier itself is not recorded). " +
		"Records are found where a catalogued subject field holds the subject's pseudonym" +
		" (or, for datasets configured with subject_match: plaintext, the identifier)."}
	// One store lookup per distinct stored form of the identifier.
	values := map[string]string{} // stored value → match mode
	for _, e := range b.g.Catalog.Datasets {
		if len(e.SubjectFields) == 0 {
			continue
		}
		if e.matchMode() == MatchPlaintext {
			values[b.req.Subject] = MatchPlaintext
		} else {
			if len(b.g.RedactionKey) == 0 {
				return dsarSec, eraseSec, nil, fmt.Errorf("reports: catalog dataset %q matches subjects by pseudonym: the redaction key is required", e.Name)
			}
			values[canonical.Pseudonym(b.g.RedactionKey, b.req.Subject)] = MatchPseudonym
		}
	}
	if len(values) == 0 {
		return dsarSec, eraseSec, nil, fmt.Errorf("reports: no catalog dataset has subject_fields: the subject cannot be looked up")
	}
	found := map[subjectRecord]bool{}
	for _, v := range sortedKeys(values) {
		q := store.EventQuery{From: b.req.From, To: b.req.To}
		evs, err := b.g.Source.EventsWithValue(b.ctx, q, v)
		if err != nil {
			return dsarSec, eraseSec, nil, fmt.Errorf("reports: subject lookup: %w", err)
		}
		params := eventQueryParams(q)
		params["value"] = values[v] + " form of the subject"
		b.record("events whose record data holds the subject", "EventsWithValue", params, len(evs))
		for _, e := range evs {
			ds := eventDataset(&e.Event)
			entry := b.g.Catalog.Match(ds)
			if entry == nil || entry.matchMode() != values[v] || !holdsIn(e.RecordData, entry.SubjectFields, v) || e.RecordID == "" {
				continue
			}
			found[subjectRecord{ds, e.RecordID}] = true
		}
	}
	recs := make([]subjectRecord, 0, len(found))
	for r := range found {
		recs = append(recs, r)
	}
	slices.SortFunc(recs, func(x, y subjectRecord) int {
		return strings.Compare(x.dataset+"\x00"+x.recordID, y.dataset+"\x00"+y.recordID)
	})
	b.progress(fmt.Sprintf("reading the history of %d subject record(s)", len(recs)))
	var recRows, histRows, eraseRows [][]any
	ids := map[string]bool{}
	var deletes int64
	for _, r := range recs {
		if ids[r.recordID] {
			continue
		}
		ids[r.recordID] = true
	}
	for _, id := range sortedKeys(ids) {
		q := store.EventQuery{RecordID: id, From: b.req.From, To: b.req.To}
		evs, err := b.g.Source.Events(b.ctx, q)
		if err != nil {
			return dsarSec, eraseSec, nil, fmt.Errorf("reports: record history: %w", err)
		}
		b.record("history of a subject record", "Events", eventQueryParams(q), len(evs))
		perDataset := map[string][]store.StoredEvent{}
		for _, e := range evs {
			ds := eventDataset(&e.Event)
			perDataset[ds] = append(perDataset[ds], e)
			histRows = append(histRows, []any{id, fmtTime(e.Time), e.BatchID, e.JobName, shortName(e.Name), ds, e.ChangeType, strings.Join(e.ChangedFields, " ")})
			if e.Name == auditevent.RecordDelete || e.ChangeType == auditevent.ChangeDelete {
				deletes++
				system := e.Target.Namespace
				limit := ""
				if entry := b.g.Catalog.Match(ds); entry != nil {
					limit = entry.ErasureLimit
				}
				eraseRows = append(eraseRows, []any{id, system, ds, fmtTime(e.Time), e.BatchID, e.JobName, dash(e.DerivedBy), limit})
			}
		}
		for _, ds := range sortedKeys(perDataset) {
			l := perDataset[ds]
			if ds == "" {
				continue
			}
			last := l[len(l)-1]
			data := ""
			for i := len(l) - 1; i >= 0; i-- {
				if l[i].RecordData != nil {
					b, _ := canonical.Marshal(l[i].RecordData)
					data = string(b)
					break
				}
			}
			entry := b.g.Catalog.Match(ds)
			var purposes, cats, recipients, limit string
			if entry != nil {
				purposes, cats, recipients, limit = join(entry.Purposes), join(entry.DataCategories), join(entry.Recipients), entry.ErasureLimit
			}
			recRows = append(recRows, []any{id, ds, fmtTime(l[0].Time), fmtTime(last.Time), int64(len(l)), shortName(last.Name),
				purposes, cats, recipients, limit, data})
		}
	}
	max := b.maxRows()
	dsarSec.Tables = []Table{
		newTable("subject_records", "The subject's records", []string{"record_id", "dataset", "first_seen", "last_seen", "events",
			"last_event", "purposes", "data_categories", "recipients", "erasure_limit", "latest_data"}, recRows, max),
		newTable("subject_history", "Every event about the subject's records", []string{"record_id", "time", "batch_id", "job",
			"event", "dataset", "change", "changed_fields"}, histRows, max),
	}
	eraseSec.Text = []string{"Delete events for the subject's records, per system (target namespace), with dates. " +
		"A record deleted from one system may still be held in another: compare with the records above."}
	eraseSec.Tables = []Table{newTable("erasures", "Deletions", []string{"record_id", "system", "dataset", "time", "batch_id",
		"job", "derived_by", "erasure_limit"}, eraseRows, max)}
	return dsarSec, eraseSec, []Metric{
		metric("subject_records", "Subject records found", int64(len(recRows))),
		metric("subject_events", "Events about the subject's records", int64(len(histRows))),
		metric("subject_deletions", "Deletions of the subject's records", deletes),
	}, nil
}

// holdsIn reports whether one of the fields of data holds v.
func holdsIn(data map[string]any, fields []string, v string) bool {
	for _, f := range fields {
		if s, ok := data[f].(string); ok && s == v {
			return true
		}
	}
	return false
}

// eventDataset is the dataset an event is about: its target, else its
// source.
func eventDataset(e *auditevent.Event) string {
	if !e.Target.IsZero() {
		return e.Target.String()
	}
	return e.Source.String()
}

func shortName(n string) string { return strings.TrimPrefix(n, "batchaudit.") }
