package cdcprocessor

import (
	"bytes"
	"context"
	"encoding/json"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/batchaudit/batchaudit/processor/cdcprocessor/internal/state"
)

// batchState is the state of one incoming batch while it is classified:
// records loaded or changed, and runs touched.
type batchState struct {
	recs   map[string]*state.Record // state key → record (nil: no state)
	dirty  map[string]bool
	runs   map[uint64]*state.Run
	out    plog.Logs // derived deletes not yet forwarded
	outFor *item     // batch end whose deletes b.outSL collects
	outSL  plog.ScopeLogs
}

// apply classifies items against the state and commits the state changes.
// It returns the derived delete events to append to the batch.
func (p *cdcProcessor) apply(ctx context.Context, items []*item) (plog.Logs, error) {
	b := &batchState{recs: map[string]*state.Record{}, dirty: map[string]bool{}, runs: map[uint64]*state.Run{}, out: plog.NewLogs()}
	err := p.applyItems(ctx, b, items)
	if err == nil {
		err = p.commit(ctx, b)
	}
	if err != nil {
		// Memory caches may be ahead of storage now; reload them.
		if rerr := p.st.Reset(ctx); rerr != nil {
			p.set.Logger.Warn("cdc: reloading state after a failed batch failed; will retry on the next batch")
		}
		return plog.Logs{}, err
	}
	return b.out, nil
}

func (p *cdcProcessor) applyItems(ctx context.Context, b *batchState, items []*item) error {
	if err := p.load(ctx, b, items); err != nil {
		return err
	}
	for _, it := range items {
		if it.kind == kindEnd {
			// Batch end scans read the state directly, so everything before
			// it must be committed first.
			if err := p.commit(ctx, b); err != nil {
				return err
			}
			if err := p.endRun(ctx, b, it); err != nil {
				return err
			}
			clear(b.recs)
			continue
		}
		rec, err := p.record(ctx, b, it.skey)
		if err != nil {
			return err
		}
		run, err := p.run(ctx, b, it.run, it.ev.BatchID)
		if err != nil {
			return err
		}
		if err := p.classify(ctx, b, it, rec, run); err != nil {
			return err
		}
	}
	return nil
}

// load reads the state of every record the batch touches in one call.
func (p *cdcProcessor) load(ctx context.Context, b *batchState, items []*item) error {
	keys := make([]string, 0, len(items))
	for _, it := range items {
		if it.kind == kindEnd {
			break // records after a batch end are read after its scan
		}
		if _, ok := b.recs[it.skey]; !ok {
			b.recs[it.skey] = nil
			keys = append(keys, it.skey)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	vals, err := p.st.Get(ctx, keys...)
	if err != nil {
		return err
	}
	for i, v := range vals {
		if v == nil {
			continue
		}
		r := &state.Record{}
		if err := r.Unmarshal(v); err != nil {
			return err
		}
		b.recs[keys[i]] = r
	}
	return nil
}

func (p *cdcProcessor) record(ctx context.Context, b *batchState, skey string) (*state.Record, error) {
	if r, ok := b.recs[skey]; ok {
		return r, nil
	}
	vals, err := p.st.Get(ctx, skey)
	if err != nil {
		return nil, err
	}
	var r *state.Record
	if vals[0] != nil {
		r = &state.Record{}
		if err := r.Unmarshal(vals[0]); err != nil {
			return nil, err
		}
	}
	b.recs[skey] = r
	return r, nil
}

func (p *cdcProcessor) run(ctx context.Context, b *batchState, id uint64, batchID string) (*state.Run, error) {
	if r, ok := b.runs[id]; ok {
		return r, nil
	}
	r, err := p.st.Run(ctx, id, batchID)
	if err != nil {
		return nil, err
	}
	b.runs[id] = r
	return r, nil
}

// classify decides the change type of one record event and updates its
// state in b.
func (p *cdcProcessor) classify(ctx context.Context, b *batchState, it *item, rec *state.Record, run *state.Run) error {
	if it.hasID && rec != nil {
		if m, ok := rec.FindMemo(it.evh); ok {
			it.replay = true
			it.change, it.prev, it.changed = m.Change, m.PrevHash, m.Fields
			it.oldVals = decodeValues(m.Old)
			p.tel.ProcessorCdcRedelivered.Add(ctx, 1)
			p.count(ctx, it)
			return nil
		}
	}
	meta := p.st.Meta(it.dsID, it.ds.role, it.namespace, it.name)
	memo := state.Memo{Event: it.evh, Run: it.run}
	next := rec
	if it.kind == kindDelete {
		if rec == nil || rec.Tombstone {
			// Unknown or already deleted: nothing to compare and nothing to
			// change; the answer is the same on every delivery.
			it.change = state.ChangeDelete
			p.count(ctx, it)
			p.countRun(run, it.change)
			return nil
		}
		it.change, it.prev = state.ChangeDelete, rec.RecHash
		next = cloneRecord(rec)
		next.Tombstone, next.DeletedRun = true, it.run
		meta.Live--
		meta.Tombs++
	} else {
		run.Touch(it.dsID, it.ev.Partition)
		switch {
		case rec == nil || rec.Tombstone:
			it.change = state.ChangeInsert
			next = &state.Record{}
			if rec != nil { // a deleted key comes back: reuse its index slot
				next.Slot = rec.Slot
				next.Memo = rec.Memo
				meta.Tombs--
			} else {
				slot, err := p.st.AppendKey(ctx, it.dsID, it.kh)
				if err != nil {
					return err
				}
				next.Slot = slot
			}
			meta.Live++
		case it.cmpHash != nil && rec.CmpHash != nil:
			it.change = changeOf(bytes.Equal(it.cmpHash, rec.CmpHash))
		case it.cmpHash != nil && rec.FieldsOK:
			// CmpHash is only stored when it differs from RecHash.
			it.change = changeOf(bytes.Equal(it.cmpHash, rec.RecHash))
		default:
			// Hash only (or the previous version was): compare record hashes.
			it.change = changeOf(bytes.Equal(it.recHash, rec.RecHash))
		}
		if it.change == state.ChangeUpdate || it.change == state.ChangeNoChange {
			it.prev = rec.RecHash
			next = cloneRecord(rec)
		}
		if it.change == state.ChangeUpdate && it.fields != nil && rec.FieldsOK {
			it.changed = diffFields(rec.Fields, it.fields)
			if it.ds.cfg.KeepOldValues {
				old := decodeValues(rec.Old)
				it.oldVals = pick(old, it.changed)
				memo.Old = encodeValues(it.oldVals)
			}
		}
		next.LastRun = it.run
		next.Partition = it.ev.Partition
		next.RecordID = it.ev.RecordID
		if next.RecordID == "" {
			next.RecordID = it.key
		}
		if it.change != state.ChangeNoChange || it.fields != nil {
			next.RecHash = it.recHash
			next.CmpHash = nil
			if it.cmpHash != nil && !bytes.Equal(it.cmpHash, it.recHash) {
				next.CmpHash = it.cmpHash
			}
			if it.fields != nil {
				next.Fields, next.FieldsOK = it.fields, true
				next.Old = nil
				if it.ds.cfg.KeepOldValues {
					next.Old = it.oldJSON
				}
			} else if it.change != state.ChangeNoChange {
				// The record changed but only its hash is known: the stored
				// field hashes no longer describe it.
				next.Fields, next.FieldsOK, next.Old = nil, false, nil
			}
		}
	}
	memo.Change, memo.PrevHash, memo.Fields = it.change, it.prev, it.changed
	if it.hasID {
		next.PushMemo(memo, p.cfg.MemoDepth)
	}
	b.recs[it.skey] = next
	b.dirty[it.skey] = true
	p.count(ctx, it)
	p.countRun(run, it.change)
	return nil
}

func changeOf(equal bool) state.Change {
	if equal {
		return state.ChangeNoChange
	}
	return state.ChangeUpdate
}

func cloneRecord(r *state.Record) *state.Record {
	c := *r
	c.Memo = append([]state.Memo(nil), r.Memo...)
	return &c
}

// diffFields returns the names of fields added, removed or changed; both
// lists are sorted by name.
func diffFields(old, cur []state.FieldSum) []string {
	var out []string
	i, j := 0, 0
	for i < len(old) || j < len(cur) {
		switch {
		case j == len(cur) || (i < len(old) && old[i].Name < cur[j].Name):
			out = append(out, old[i].Name)
			i++
		case i == len(old) || cur[j].Name < old[i].Name:
			out = append(out, cur[j].Name)
			j++
		default:
			if old[i].Sum != cur[j].Sum {
				out = append(out, cur[j].Name)
			}
			i++
			j++
		}
	}
	return out
}

func pick(m map[string]any, fields []string) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(fields))
	for _, f := range fields {
		if v, ok := m[f]; ok {
			out[f] = v
		}
	}
	return out
}

func decodeValues(b []byte) map[string]any {
	if len(b) == 0 {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	return m
}

func encodeValues(m map[string]any) []byte {
	if m == nil {
		return nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil
	}
	return b
}

var changeNames = map[state.Change]string{
	state.ChangeInsert: "insert", state.ChangeUpdate: "update", state.ChangeDelete: "delete", state.ChangeNoChange: "no_change",
}

// changeAttrs are the metric attribute options per change type, built once
// (building them per event allocates).
var changeAttrs = func() map[state.Change]metric.AddOption {
	m := map[state.Change]metric.AddOption{}
	for c, n := range changeNames {
		m[c] = metric.WithAttributeSet(attribute.NewSet(attribute.String("change_type", n)))
	}
	return m
}()

func (p *cdcProcessor) count(ctx context.Context, it *item) {
	p.tel.ProcessorCdcRecordsClassified.Add(ctx, 1, changeAttrs[it.change])
}

func (p *cdcProcessor) countRun(run *state.Run, c state.Change) {
	switch c {
	case state.ChangeInsert:
		run.Counts.Inserted++
	case state.ChangeUpdate:
		run.Counts.Updated++
	case state.ChangeDelete:
		run.Counts.Deleted++
	case state.ChangeNoChange:
		run.Counts.Unchanged++
	}
}

// commit writes the changed records, metas and runs in one storage call.
func (p *cdcProcessor) commit(ctx context.Context, b *batchState) error {
	var buf []byte
	for k := range b.dirty {
		buf = b.recs[k].Marshal(buf[:0])
		p.st.Put(k, append([]byte(nil), buf...))
	}
	clear(b.dirty)
	now := p.now()
	for _, r := range b.runs {
		p.st.SaveRun(r, now)
	}
	clear(b.runs)
	return p.st.Flush(ctx)
}
