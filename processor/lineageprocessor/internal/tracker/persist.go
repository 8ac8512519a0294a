package tracker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/batchaudit/batchaudit/auditevent"
)

// Storage layout (the storage client cannot list keys, so everything is
// reachable from one index document):
//
//	index           {"active": [batch ids], "closed": [batch ids]}
//	run/<batch>     run summary (JSON): counters, edges, finding ids, datasets, segment count
//	seg/<batch>/<n> lineages n*SegmentSize.. of the run (binary, see codec.go)
const indexKey = "index"

type indexDoc struct {
	Active []string `json:"active"`
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
	NoRead       idList               `json:"no_read"`
	Breaks       idList               `json:"breaks"`
	Inputs       []string             `json:"inputs,omitempty"`
	Outputs      []string             `json:"outputs,omitempty"`
	Columns      map[string]any       `json:"columns,omitempty"`
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
		data, err := t.cfg.Store.Get(ctx, seg.key())
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
	if cap(t.resident) > 1024 && len(t.resident) < cap(t.resident)/4 {
		t.resident = append([]*segment(nil), t.resident...)
	}
}

// spill writes seg to the store and drops its bodies from memory; without a
// store the bodies are evicted (lost, and later chains marked truncated).
func (t *Tracker) spill(ctx context.Context, seg *segment) bool {
	n := int64(len(seg.lineages))
	if t.cfg.Store != nil {
		if seg.dirty || !seg.stored {
			if err := t.cfg.Store.Set(ctx, seg.key(), encodeSegment(seg)); err != nil {
				t.storageError("set", err)
				return false
			}
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

// drop forgets a finished run, in memory and in the store.
func (t *Tracker) drop(ctx context.Context, r *run) {
	delete(t.runs, r.batchID)
	t.indexDirty = true
	for _, seg := range r.segments {
		if seg.resident {
			t.residentBytes -= seg.bytes
			t.residentCount -= len(seg.lineages)
			seg.resident = false
		}
		for _, l := range seg.lineages {
			if l.state == stateOpen {
				t.open--
			}
		}
		if seg.stored && t.cfg.Store != nil {
			if err := t.cfg.Store.Delete(ctx, seg.key()); err != nil {
				t.storageError("delete", err)
			}
		}
	}
	if t.cfg.Store != nil {
		if err := t.cfg.Store.Delete(ctx, runKey(r.batchID)); err != nil {
			t.storageError("delete", err)
		}
	}
}

// Checkpoint writes every change since the last checkpoint, so a restart
// continues the chains.
func (t *Tracker) Checkpoint(ctx context.Context) error {
	if t.cfg.Store == nil {
		return nil
	}
	var errs []error
	for _, r := range t.runs {
		for _, seg := range r.segments {
			if seg.resident && (seg.dirty || !seg.stored) {
				if err := t.cfg.Store.Set(ctx, seg.key(), encodeSegment(seg)); err != nil {
					errs = append(errs, err)
					continue
				}
				seg.stored, seg.dirty = true, false
			}
		}
		if r.dirtyMeta {
			data, err := json.Marshal(r.meta())
			if err == nil {
				err = t.cfg.Store.Set(ctx, runKey(r.batchID), data)
			}
			if err != nil {
				errs = append(errs, err)
				continue
			}
			r.dirtyMeta = false
		}
	}
	if t.indexDirty {
		doc := indexDoc{Active: make([]string, 0, len(t.runs)), Closed: t.closedOrder}
		for id := range t.runs {
			doc.Active = append(doc.Active, id)
		}
		data, _ := json.Marshal(doc)
		if err := t.cfg.Store.Set(ctx, indexKey, data); err != nil {
			errs = append(errs, err)
		} else {
			t.indexDirty = false
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
		Observed: r.observed, NoRead: r.noRead, Breaks: r.breaks, Inputs: r.inputs, Outputs: r.outputs, Columns: r.columns,
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
	if err != nil || data == nil {
		return err
	}
	var doc indexDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("lineage state index: %w", err)
	}
	for _, id := range doc.Closed {
		t.remember(id, nil)
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
	r.observed, r.noRead, r.breaks, r.inputs, r.outputs, r.columns = m.Observed, m.NoRead, m.Breaks, m.Inputs, m.Outputs, m.Columns
	for _, e := range m.Edges {
		r.edges[edgeKey{int32(e[0]), int32(e[1])}] = e[2]
	}
	r.dirtyMeta = false
	t.runs[batchID] = r
	var errs []error
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
