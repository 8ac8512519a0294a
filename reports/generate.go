package reports

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/store"
)

// Source is what reports read: the store's reader and its aggregations,
// and for the integrity attestation its Merkle logs and report index.
type Source interface {
	store.Reader
	store.Aggregator
	store.Integrity
	store.ReportIndex
}

// Generator builds reports from one store.
type Generator struct {
	Source Source
	// StoreName describes the store for the envelope (e.g. "sqlite:
	// ./batchaudit-data/audit.db"); it is outside the content hash.
	StoreName string
	Catalog   Catalog
	// RedactionKey is cdcprocessor's redaction_key: GDPR subjects are
	// matched through its pseudonyms.
	RedactionKey []byte
	// CheckpointKeys verify the signatures of the checkpoints the
	// attestation uses; without them the report says they were not
	// verified.
	CheckpointKeys []note.Verifier
	// OriginPrefix is the exporter's checkpoints::origin_prefix; empty
	// means DefaultOriginPrefix.
	OriginPrefix string
	// MaxRows caps the record-level tables (HIPAA accesses, DSAR history);
	// 0 means 10000. The totals are always complete.
	MaxRows int
	// Now is the clock (tests set it); nil means time.Now.
	Now func() time.Time
	// Progress, if set, is told what the generator is doing.
	Progress func(step string)
}

// Request asks for one report.
type Request struct {
	Kind     string
	From, To time.Time
	Filters  Filters
	// Subject is the data subject's identifier for the GDPR DSAR extract,
	// as plaintext; only its pseudonym reaches the report.
	Subject string
	// Schedule names the series the report belongs to: the attestation's
	// previous report is looked up among that schedule's reports (empty:
	// among all recorded reports of the same kind and filters).
	Schedule string
}

// Validate checks a request.
func (r *Request) Validate() error {
	var errs []error
	if !slices.Contains(Kinds, r.Kind) {
		errs = append(errs, fmt.Errorf("unknown report kind %q (one of %s)", r.Kind, strings.Join(Kinds, ", ")))
	}
	if r.From.IsZero() || r.To.IsZero() || !r.From.Before(r.To) {
		errs = append(errs, fmt.Errorf("the period needs --from before --to (got %s .. %s)", fmtTime(r.From), fmtTime(r.To)))
	}
	if r.Kind == KindLineage && r.Filters.Record == "" && r.Filters.Dataset == "" {
		errs = append(errs, errors.New("a lineage report needs a record (--record) or a dataset (--dataset)"))
	}
	if r.Subject != "" && r.Kind != KindGDPR {
		errs = append(errs, errors.New("--subject is for gdpr reports"))
	}
	return errors.Join(errs...)
}

// builder holds the state of one report being built.
type builder struct {
	g    *Generator
	ctx  context.Context
	req  Request
	rep  *Report
	runs []store.Run
	// jobRuns are the runs the store returned for the period (job and actor
	// filters, not the dataset filter): change management compares a run
	// with its job's previous run, whichever datasets that one touched.
	jobRuns []store.Run
	// selected holds the batch ids of runs, the runs the report covers.
	selected map[string]*store.Run
	findings []store.StoredEvent
	base     []store.Bucket
	counts   []runCount
	// gaps is how many gap entries (numbers that hold no event) the
	// period holds: DeadLetters lists them with the dead letters.
	gaps int64
}

// Generate builds a report. Its content depends only on the trail and the
// request, never on when or from which backend it was generated.
func (g *Generator) Generate(ctx context.Context, req Request) (*Report, error) {
	req.From, req.To = req.From.UTC(), req.To.UTC()
	if err := req.Validate(); err != nil {
		return nil, err
	}
	now := time.Now
	if g.Now != nil {
		now = g.Now
	}
	if err := g.Catalog.Validate(); err != nil {
		return nil, err
	}
	filters := req.Filters
	if req.Subject != "" {
		filters.Subject = SubjectRef(g.RedactionKey, req.Subject)
	}
	b := &builder{g: g, ctx: ctx, req: req, rep: &Report{Schema: SchemaVersion, Envelope: Envelope{
		ID: reportID(req.Kind, req.From, req.To, filters), Kind: req.Kind, Title: titles[req.Kind],
		Frameworks: frameworks[req.Kind], From: req.From, To: req.To, Filters: filters,
		Generator: "batchaudit reports", GeneratorVersion: Version,
		GeneratedAt: now().UTC(), Store: g.StoreName,
	}, Summary: []Metric{}, Sections: []Section{}, Queries: []Query{}}}
	b.rep.Completeness.PeriodClosed = !req.To.After(b.rep.Envelope.GeneratedAt)
	if err := b.loadRuns(); err != nil {
		return nil, err
	}
	if err := b.completeness(); err != nil {
		return nil, err
	}
	build := map[string]func() error{KindSOX: b.sox, KindGDPR: b.gdpr, KindHIPAA: b.hipaa,
		KindLineage: b.lineage, KindReconciliation: b.reconciliation}[req.Kind]
	if err := build(); err != nil {
		return nil, err
	}
	if err := b.attest(); err != nil {
		return nil, err
	}
	return b.rep, nil
}

var titles = map[string]string{
	KindSOX:            "SOX IT general controls: batch operations, data transfer, change and access",
	KindGDPR:           "GDPR: records of processing, data subject access and erasure evidence",
	KindHIPAA:          "HIPAA: activity on electronic protected health information",
	KindLineage:        "Lineage: from sources through every step to targets",
	KindReconciliation: "Reconciliation: data loss, gaps and integrity alarms",
}

var frameworks = map[string][]string{
	KindSOX:            {"SOX"},
	KindGDPR:           {"GDPR"},
	KindHIPAA:          {"HIPAA"},
	KindLineage:        {"SOX", "GDPR"},
	KindReconciliation: {"SOX"},
}

func (b *builder) progress(step string) {
	if b.g.Progress != nil {
		b.g.Progress(step)
	}
}

func (b *builder) maxRows() int {
	if b.g.MaxRows > 0 {
		return b.g.MaxRows
	}
	return 10000
}

// record notes a store read in the report.
func (b *builder) record(purpose, call string, params map[string]any, results int) {
	b.rep.Queries = append(b.rep.Queries, Query{Purpose: purpose, Call: call, Params: params, Results: int64(results)})
}

func timeParam(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func eventQueryParams(q store.EventQuery) map[string]any {
	p := map[string]any{"from": timeParam(q.From), "to": timeParam(q.To)}
	if q.BatchID != "" {
		p["batch_id"] = q.BatchID
	}
	if q.RecordID != "" {
		p["record_id"] = q.RecordID
	}
	if q.Dataset != "" {
		p["dataset"] = q.Dataset
	}
	if len(q.Names) > 0 {
		p["names"] = append([]string{}, q.Names...)
	}
	if q.Limit > 0 {
		p["limit"] = int64(q.Limit)
	}
	return p
}

// loadRuns reads the runs that started in the period (job and actor
// filters in the store, the dataset filter on their sources and targets).
func (b *builder) loadRuns() error {
	b.progress("reading runs")
	q := store.RunQuery{From: b.req.From, To: b.req.To, JobName: b.req.Filters.Job, ActorID: b.req.Filters.Actor}
	runs, err := b.g.Source.Runs(b.ctx, q)
	if err != nil {
		return fmt.Errorf("reports: runs: %w", err)
	}
	b.record("runs that started in the period", "Runs", map[string]any{"from": timeParam(q.From), "to": timeParam(q.To),
		"job_name": q.JobName, "actor_id": q.ActorID}, len(runs))
	b.selected = map[string]*store.Run{}
	b.jobRuns, b.runs = runs, runs
	if d := b.req.Filters.Dataset; d != "" {
		b.runs = nil
		for _, r := range runs {
			if runTouches(&r, d) {
				b.runs = append(b.runs, r)
			}
		}
	}
	for i := range b.runs {
		b.selected[b.runs[i].BatchID] = &b.runs[i]
	}
	return nil
}

// runTouches reports whether a run read or wrote the dataset (bare name or
// namespace/name).
func runTouches(r *store.Run, d string) bool {
	for _, l := range [][]string{r.Sources, r.Targets} {
		for _, s := range l {
			if datasetIs(s, d) {
				return true
			}
		}
	}
	return false
}

// datasetIs reports whether the namespace/name string s is the dataset d
// (bare name or namespace/name).
func datasetIs(s, d string) bool {
	return s == d || strings.HasSuffix(s, "/"+d)
}

// eventQuery is the period's events, with the dataset filter.
func (b *builder) eventQuery(names ...string) store.EventQuery {
	return store.EventQuery{From: b.req.From, To: b.req.To, Dataset: b.req.Filters.Dataset, Names: names}
}

// runCount is one group of runCounts.
type runCount struct {
	batch, name, source, target, change, transform string
	n                                              int64
}

// countKeys are the groups of the one aggregation pass over events that
// the run-based kinds share.
var countKeys = []store.GroupKey{store.ByBatch, store.ByName, store.BySource, store.ByTarget, store.ByChangeType,
	store.ByTransform, store.ByStream}

// baseCounts is that pass (one scan of the period, whatever the kind
// needs): the period's events counted by batch, name, source, target,
// change type, transformation step and stream, with the dataset filter.
func (b *builder) baseCounts() ([]store.Bucket, error) {
	if b.base != nil {
		return b.base, nil
	}
	b.progress("counting the period's events")
	q := b.eventQuery()
	buckets, err := b.g.Source.CountEvents(b.ctx, q, countKeys...)
	if err != nil {
		return nil, fmt.Errorf("reports: count events: %w", err)
	}
	params := eventQueryParams(q)
	params["group_by"] = groupNames(countKeys)
	b.record("events of the period per run, name, dataset, change type, step and stream", "CountEvents", params, len(buckets))
	b.base = buckets
	if b.base == nil {
		b.base = []store.Bucket{}
	}
	return b.base, nil
}

// runCounts is baseCounts of the covered runs only.
func (b *builder) runCounts() ([]runCount, error) {
	if b.counts != nil {
		return b.counts, nil
	}
	buckets, err := b.baseCounts()
	if err != nil {
		return nil, err
	}
	b.counts = make([]runCount, 0, len(buckets))
	for _, bk := range buckets {
		if _, ok := b.selected[bk.Keys[0]]; ok {
			k := bk.Keys
			b.counts = append(b.counts, runCount{k[0], k[1], k[2], k[3], k[4], k[5], bk.Count})
		}
	}
	return b.counts, nil
}

// sumCounts adds up the runCounts of the given event names (all without
// names) per key.
func (b *builder) sumCounts(key func(c *runCount) string, names ...string) (map[string]int64, error) {
	counts, err := b.runCounts()
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for i := range counts {
		c := &counts[i]
		if len(names) == 0 || slices.Contains(names, c.name) {
			out[key(c)] += c.n
		}
	}
	return out, nil
}

// observed counts the stored events per run and name.
func (b *builder) observed() (map[string]map[string]int64, error) {
	counts, err := b.runCounts()
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]int64{}
	for _, c := range counts {
		if out[c.batch] == nil {
			out[c.batch] = map[string]int64{}
		}
		out[c.batch][c.name] += c.n
	}
	return out, nil
}

func groupNames(keys []store.GroupKey) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = string(k)
	}
	return out
}

// keys joins key parts; split with strings.Split(k, "\x00").
func keys(parts ...string) string { return strings.Join(parts, "\x00") }

// loadFindings reads the finding events of the covered runs in the period.
// Findings are few (at most one per type per run), so they are listed.
func (b *builder) loadFindings() error {
	if b.findings != nil {
		return nil
	}
	b.progress("reading findings")
	q := store.EventQuery{From: b.req.From, To: b.req.To, Names: []string{auditevent.Finding}}
	evs, err := b.g.Source.Events(b.ctx, q)
	if err != nil {
		return fmt.Errorf("reports: findings: %w", err)
	}
	b.record("findings of the period", "Events", eventQueryParams(q), len(evs))
	b.findings = []store.StoredEvent{}
	for _, e := range evs {
		if _, ok := b.selected[e.BatchID]; ok {
			b.findings = append(b.findings, e)
		}
	}
	return nil
}

// completeness fills what the report was built from.
func (b *builder) completeness() error {
	b.progress("counting events and dead letters")
	c := &b.rep.Completeness
	c.Runs = int64(len(b.runs))
	for _, r := range b.runs {
		if r.Status == "running" {
			c.RunsUnended++
		}
	}
	perStream := map[string]int64{}
	if b.req.Kind != KindLineage && b.req.Filters.Dataset == "" {
		// The run-based kinds count the whole period anyway: one scan.
		buckets, err := b.baseCounts()
		if err != nil {
			return err
		}
		for _, bk := range buckets {
			perStream[bk.Keys[len(bk.Keys)-1]] += bk.Count
		}
	} else {
		q := store.EventQuery{From: b.req.From, To: b.req.To}
		buckets, err := b.g.Source.CountEvents(b.ctx, q, store.ByStream)
		if err != nil {
			return fmt.Errorf("reports: count events: %w", err)
		}
		params := eventQueryParams(q)
		params["group_by"] = []string{string(store.ByStream)}
		b.record("events of the period per stream (completeness)", "CountEvents", params, len(buckets))
		for _, bk := range buckets {
			perStream[bk.Keys[0]] += bk.Count
		}
	}
	c.EventsByStream = []StreamCount{}
	for _, st := range sortedKeys(perStream) {
		c.Events += perStream[st]
		c.EventsByStream = append(c.EventsByStream, StreamCount{Stream: st, Events: perStream[st]})
	}
	dls, err := b.g.Source.CountDeadLetters(b.ctx, b.req.From, b.req.To)
	if err != nil {
		return fmt.Errorf("reports: count dead letters: %w", err)
	}
	b.record("dead letters of the period per stream", "CountDeadLetters", map[string]any{"from": timeParam(b.req.From), "to": timeParam(b.req.To)}, len(dls))
	c.DeadLetterCounts = []DeadLetterCount{}
	for _, d := range dls {
		c.DeadLetters += d.DeadLetters
		c.IntegrityAlarms += d.Conflicts
		b.gaps += d.Gaps
		c.DeadLetterCounts = append(c.DeadLetterCounts, DeadLetterCount{Stream: d.Stream, DeadLetters: d.DeadLetters, IntegrityAlarms: d.Conflicts})
	}
	c.Notes = []string{
		"The report covers the runs that started in [period_from, period_to) and matched the filters, and those runs' events with a time in the same period.",
		"Event and dead-letter counts above are of the whole period in the store, every stream, before filters.",
	}
	if !c.PeriodClosed {
		c.Notes = append(c.Notes, "The period had not ended when the report was generated: regenerating it later can give other numbers.")
	}
	if c.RunsUnended > 0 {
		c.Notes = append(c.Notes, fmt.Sprintf("%d run(s) had not ended when the report was generated; their counters are partial.", c.RunsUnended))
	}
	if c.DeadLetters > 0 {
		c.Notes = append(c.Notes, fmt.Sprintf("%d event(s) of the period are dead letters (kept, not counted as audit events); see the reconciliation report.", c.DeadLetters))
	}
	return b.prunedNotes()
}

// prunedNotes says when retention removed entries from before a cutoff
// after the period's start: the report then lacks what was removed.
func (b *builder) prunedNotes() error {
	q := store.EventQuery{Names: []string{auditevent.RetentionPrune}}
	prunes, err := b.g.Source.Events(b.ctx, q)
	if err != nil {
		return fmt.Errorf("reports: retention events: %w", err)
	}
	b.record("retention prunes of the trail (any time)", "Events", eventQueryParams(q), len(prunes))
	c := &b.rep.Completeness
	for _, p := range prunes {
		r := p.Retention
		cutoff, err := time.Parse(time.RFC3339Nano, r.Cutoff)
		if err != nil || !b.req.From.Before(cutoff) || r.ThroughSequence == nil {
			continue
		}
		c.Notes = append(c.Notes, fmt.Sprintf("Retention removed entries #1..#%d of stream %s, all from before %s (batchaudit.retention.prune at #%d, %s): "+
			"the period starts before that, so runs and events of it may be missing here; batchaudit verify reports the pruned range.",
			*r.ThroughSequence, p.Stream, fmtTime(cutoff), p.Sequence, fmtTime(p.Time)))
	}
	return nil
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

func yesNo(v bool) string {
	if v {
		return "yes"
	}
	return "no"
}

func failed(status string) bool {
	return status != auditevent.ResultSuccess && status != "running" && status != auditevent.ResultSkip
}

func metric(id, label string, v int64) Metric { return Metric{ID: id, Label: label, Value: v} }
