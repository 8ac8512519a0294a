package tracker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"go.opentelemetry.io/collector/extension/xextension/storage"

	"github.com/batchaudit/batchaudit/auditevent"
)

// Storage layout (the storage client cannot list keys, so everything is
// reachable from one index document):
//
//	index           {"active": [batch ids]} ("closed": ids of settled runs, from older versions)
//	run/<batch>     run summary (JSON): counters, edges, finding ids, datasets, segment count
//	seg/<batch>/<n> lineages n*SegmentSize.. of the run (binary, see codec.go)
//	seen/<batch>/<n> a chunk of the run's recent event ids (binary), for dedupe
//	settled, settled/<batch>  settled runs and their findings (see settled.go)
//
// Changes are not written one by one: they are collected (spilled segments
// in pending, the rest by dirty flags) and written by Checkpoint in one
// storage Batch, which filestorage commits as one bbolt transaction. The
// stored state therefore always corresponds to a whole number of processed
// requests, so a crash never leaves a segment ahead of its run summary.
const indexKey = "index"

type indexDoc struct {
	Active []string `json:"active"`
	// Closed is only read: versions before the settled list kept the ids
	// of the last settled runs here.
	Closed []string `json:"closed,omitempty"`
}

type runMeta struct {
	BatchID      string               `json:"batch_id"`
	JobName      string               `json:"job_name,omitempty"`
	JobNamespace string               `json:"job_namespace,omitempty"`
	LastSeen     int64                `json:"last_seen"`
	LastTime     int64                `json:"last_time"`
	Datasets     []auditevent.Dataset `json:"datasets,omitempty"`
	Segments     int                  `json:"segments"`
	Observed     auditevent.Counters  `json:"observed"`
	Edges        [][3]int64           `json:"edges,omitempty"`
	Inputs       []string             `json:"inputs,omitempty"`
	Outputs      []string             `json:"outputs,omitempty"`
	Columns      map[string]any       `json:"columns,omitempty"`
	SeenChunks   int                  `json:"seen_chunks,omitempty"`
	Parent       string               `json:"parent,omitempty"`
	// StartOnly is stored inverted so that summaries written before it
	// existed read as "did more than start".
	NotStartOnly bool    `json:"not_start_only,omitempty"`
	End          *runEnd `json:"end,omitempty"`
}

// put queues a write for the next Checkpoint.
func (t *Tracker) put(key string, value []byte) {
	if t.pending == nil {
		t.pending = map[string][]byte{}
	}
	t.pending[key] = value
}

// Stage queues a write of the caller's own key (nil: a delete) into the next
// Checkpoint, so it is stored in the same batch as the state it belongs to.
// Without a store it does nothing.
func (t *Tracker) Stage(key string, value []byte) {
	if t.cfg.Store != nil {
		t.put(key, value)
	}
}

// del queues a delete for the next Checkpoint (a nil pending value).
func (t *Tracker) del(key string) { t.put(key, nil) }

// get reads key, seeing writes queued but not yet checkpointed.
func (t *Tracker) get(ctx context.Context, key string) ([]byte, error) {
	if v, ok := t.pending[key]; ok {
		return v, nil
	}
	return t.cfg.Store.Get(ctx, key)
}

// touch marks seg changed, so the next Checkpoint writes it.
func (t *Tracker) touch(seg *segment) {
	if !seg.dirty {
		seg.dirty = true
		t.dirtySegs = append(t.dirtySegs, seg)
	}
}

func (t *Tracker) storageError(op string, err error) {
	if t.cfg.Hooks.StorageError != nil {
		t.cfg.Hooks.StorageError(op, err)
	}
}

// load brings l's segment back into memory if it was spilled. A segment that
// cannot be read (or was evicted without a store) gets empty bodies marked
// truncated: the chain is reported incomplete rather than lost silently.
func (t *Tracker) load(ctx context.Context, l *lineage) {
	if l.body != nil {
		return
	}
	seg := l.seg
	var loaded []*lineage
	if seg.stored && t.cfg.Store != nil {
		data, err := t.get(ctx, seg.key())
		switch {
		case err != nil:
			t.storageError("get", err)
		case data == nil:
			t.storageError("get", fmt.Errorf("segment %s is missing", seg.key()))
		default:
			if loaded, err = decodeSegment(data); err != nil || len(loaded) != len(seg.lineages) {
				t.storageError("decode", fmt.Errorf("segment %s: %w", seg.key(), errors.Join(err, errCorrupt)))
				loaded = nil
			}
		}
	}
	var bytes int64
	for i, x := range seg.lineages {
		if loaded != nil && loaded[i].key == x.key {
			x.body = loaded[i].body
		} else if x.body == nil {
			x.body = &body{truncated: true}
		}
		bytes += x.body.size()
	}
	if loaded != nil && t.cfg.Hooks.Reloaded != nil {
		t.cfg.Hooks.Reloaded(int64(len(seg.lineages)))
	}
	seg.resident = true
	seg.bytes = bytes
	t.residentBytes += bytes
	t.residentCount += len(seg.lineages)
	t.resident = append(t.resident, seg)
}

func (t *Tracker) overBudget() bool {
	return (t.cfg.MemoryLimitBytes > 0 && t.residentBytes > t.cfg.MemoryLimitBytes) ||
		(t.cfg.MaxResidentLineages > 0 && t.residentCount > t.cfg.MaxResidentLineages)
}

// enforceBudget spills the oldest resident segments until the chains in
// memory fit the budget.
func (t *Tracker) enforceBudget(ctx context.Context) {
	for t.overBudget() && len(t.resident) > 0 {
		seg := t.resident[0]
		t.resident[0] = nil
		t.resident = t.resident[1:]
		if !seg.resident || t.runs[seg.run.batchID] != seg.run {
			continue
		}
		if !t.spill(ctx, seg) {
			t.resident = append(t.resident, seg)
			return
		}
	}
	t.shrinkResident()
}

// spill queues seg for the store and drops its bodies from memory; without a
// store the bodies are evicted (lost, and later chains marked truncated).
func (t *Tracker) spill(ctx context.Context, seg *segment) bool {
	n := int64(len(seg.lineages))
	if t.cfg.Store != nil {
		if seg.dirty || !seg.stored {
			// Written with the rest of the request's changes; read back
			// from pending if touched again before that.
			t.put(seg.key(), encodeSegment(seg))
			seg.stored, seg.dirty = true, false
		}
		if t.cfg.Hooks.Spilled != nil {
			t.cfg.Hooks.Spilled(n)
		}
	} else if t.cfg.Hooks.Evicted != nil {
		t.cfg.Hooks.Evicted(n)
	}
	for _, l := range seg.lineages {
		l.body = nil
	}
	seg.resident = false
	t.residentBytes -= seg.bytes
	t.residentCount -= len(seg.lineages)
	seg.bytes = 0
	return true
}

// compactResident removes the segments of dropped runs from the resident
// FIFO once they are half of it. enforceBudget skips them too, but only runs
// over budget, and dropped segments no longer count towards the budget: left
// there, every settled run's lineages stayed reachable for the life of the
// process.
func (t *Tracker) compactResident() {
	if t.dropped == 0 || 2*t.dropped < len(t.resident) {
		return
	}
	keep := t.resident[:0]
	for _, seg := range t.resident {
		if seg.resident && t.runs[seg.run.batchID] == seg.run {
			keep = append(keep, seg)
		}
	}
	clear(t.resident[len(keep):])
	t.resident = keep
	t.dropped = 0
	t.shrinkResident()
}

// shrinkResident gives back the FIFO's array once it is mostly empty.
func (t *Tracker) shrinkResident() {
	if cap(t.resident) > 1024 && len(t.resident) < cap(t.resident)/4 {
		t.resident = append([]*segment(nil), t.resident...)
	}
}

// drop forgets a finished run, in memory and in the store.
func (t *Tracker) drop(_ context.Context, r *run) {
	delete(t.runs, r.batchID)
	t.indexDirty = true
	for _, seg := range r.segments {
		if seg.resident {
			t.residentBytes -= seg.bytes
			t.residentCount -= len(seg.lineages)
			seg.resident = false
			t.dropped++
		}
		for _, l := range seg.lineages {
			if l.state == stateOpen {
				t.open--
			}
		}
		if seg.stored && t.cfg.Store != nil {
			t.del(seg.key())
		}
		seg.dirty = false
	}
	t.compactResident()
	if t.cfg.Store != nil && r.stored {
		t.del(runKey(r.batchID))
		for c := max(0, r.seenN-seenChunks); c < r.seenN; c++ {
			t.del(seenKey(r.batchID, c))
		}
	}
}

// Checkpoint writes every change since the last checkpoint (the segments,
// run summaries and dedupe chunks that changed, spills and deletes) in one
// storage Batch, so a restart continues the chains. The processor calls it
// before a request is acknowledged. On failure the changes stay queued and
// are retried by the next Checkpoint.
func (t *Tracker) Checkpoint(ctx context.Context) error {
	if t.cfg.Store == nil {
		return nil
	}
	for _, seg := range t.dirtySegs {
		if seg.dirty && seg.resident && t.runs[seg.run.batchID] == seg.run {
			t.put(seg.key(), encodeSegment(seg))
			seg.stored = true
		}
		seg.dirty = false
	}
	clear(t.dirtySegs)
	t.dirtySegs = t.dirtySegs[:0]
	var errs []error
	for _, r := range t.runs {
		for _, c := range r.seenDirty {
			if c >= r.seenN-seenChunks {
				t.put(seenKey(r.batchID, c), encodeIDs(r.seenRing[c%seenChunks]))
			}
		}
		r.seenDirty = r.seenDirty[:0]
		if r.dirtyMeta {
			data, err := json.Marshal(r.meta())
			if err != nil {
				errs = append(errs, err)
				continue
			}
			t.put(runKey(r.batchID), data)
			r.dirtyMeta, r.stored = false, true
		}
	}
	if t.indexDirty {
		doc := indexDoc{Active: make([]string, 0, len(t.runs))}
		for id := range t.runs {
			doc.Active = append(doc.Active, id)
		}
		data, _ := json.Marshal(doc)
		t.put(indexKey, data)
		t.indexDirty = false
	}
	t.stageSettled()
	if len(t.pending) > 0 {
		ops := make([]*storage.Operation, 0, len(t.pending))
		for k, v := range t.pending {
			if v == nil {
				ops = append(ops, storage.DeleteOperation(k))
			} else {
				ops = append(ops, storage.SetOperation(k, v))
			}
		}
		if err := t.cfg.Store.Batch(ctx, ops...); err != nil {
			errs = append(errs, err)
		} else {
			clear(t.pending)
		}
	}
	err := errors.Join(errs...)
	if err != nil {
		t.storageError("checkpoint", err)
	}
	return err
}

func (r *run) meta() runMeta {
	m := runMeta{
		BatchID: r.batchID, JobName: r.jobName, JobNamespace: r.jobNamespace,
		LastSeen: r.lastSeen, LastTime: r.lastTime, Datasets: r.datasets, Segments: len(r.segments),
		Observed: r.observed, Inputs: r.inputs, Outputs: r.outputs, Columns: r.columns,
		SeenChunks: r.seenN, Parent: r.parent, NotStartOnly: !r.startOnly, End: r.end,
	}
	for k, n := range r.edges {
		m.Edges = append(m.Edges, [3]int64{int64(k.src), int64(k.dst), n})
	}
	return m
}

// Load restores the runs saved by Checkpoint.
func (t *Tracker) Load(ctx context.Context) error {
	if t.cfg.Store == nil {
		return nil
	}
	data, err := t.cfg.Store.Get(ctx, indexKey)
	if err != nil {
		return err
	}
	var doc indexDoc
	if data != nil {
		if err := json.Unmarshal(data, &doc); err != nil {
			return fmt.Errorf("lineage state index: %w", err)
		}
	}
	if err := t.loadSettled(ctx, doc.Closed); err != nil {
		return err
	}
	var errs []error
	for _, id := range doc.Active {
		if err := t.loadRun(ctx, id); err != nil {
			errs = append(errs, fmt.Errorf("run %s: %w", id, err))
		}
		t.enforceBudget(ctx)
	}
	t.indexDirty = false
	return errors.Join(errs...)
}

func (t *Tracker) loadRun(ctx context.Context, batchID string) error {
	data, err := t.cfg.Store.Get(ctx, runKey(batchID))
	if err != nil || data == nil {
		return errors.Join(err, errors.New("run summary missing"))
	}
	var m runMeta
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	r := newRun(batchID)
	r.jobName, r.jobNamespace, r.lastSeen, r.lastTime = m.JobName, m.JobNamespace, m.LastSeen, m.LastTime
	for _, d := range m.Datasets {
		r.dataset(d)
	}
	r.observed, r.inputs, r.outputs, r.columns = m.Observed, m.Inputs, m.Outputs, m.Columns
	r.parent, r.startOnly, r.end = m.Parent, !m.NotStartOnly, m.End
	for _, e := range m.Edges {
		r.edges[edgeKey{int32(e[0]), int32(e[1])}] = e[2]
	}
	r.dirtyMeta, r.stored = false, true
	t.runs[batchID] = r
	var errs []error
	if err := t.loadSeen(ctx, r, m.SeenChunks); err != nil {
		errs = append(errs, err)
	}
	for n := 0; n < m.Segments; n++ {
		seg := &segment{run: r, n: n, stored: true}
		r.segments = append(r.segments, seg)
		data, err := t.cfg.Store.Get(ctx, seg.key())
		if err == nil && data == nil {
			err = errors.New("missing")
		}
		var ls []*lineage
		if err == nil {
			ls, err = decodeSegment(data)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("segment %d: %w", n, err))
			seg.stored = false
			continue
		}
		seg.lineages = ls
		seg.resident = true
		t.resident = append(t.resident, seg)
		for _, l := range ls {
			l.seg = seg
			r.lineages[l.key] = l
			if id := l.body.source.recordID; id != "" && r.byRecord[id] == nil {
				r.byRecord[id] = l
			}
			if l.recordID != "" {
				r.byRecord[l.recordID] = l
			}
			if l.hasHash {
				r.byHash[l.hash] = l
			}
			for _, u := range l.body.unresolved {
				r.waiting[u] = append(r.waiting[u], l)
			}
			if adoptable(l) && len(l.body.steps) > 0 {
				if h := sortedSteps(l.body.steps)[0].inHash; h != "" {
					r.byStart[hashKey(h)] = l
				}
			}
			if l.state == stateOpen {
				t.open++
			}
			seg.bytes += l.body.size()
		}
		t.residentBytes += seg.bytes
		t.residentCount += len(ls)
	}
	return errors.Join(errs...)
}
