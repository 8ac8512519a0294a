package cdcprocessor

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/batchaudit/batchaudit/processor/cdcprocessor/internal/state"
)

// batchState is the state of one incoming batch while it is classified:
// records loaded or changed, and runs touched.
type batchState struct {
	bb     *batchBuf
	recs   map[string]int32 // state key → index in ents
	ents   []recEntry
	dirty  []int32 // ents changed since the last commit
	runs   map[uint64]*state.Run
	out    plog.Logs // derived deletes not yet forwarded
	outFor *item     // batch end whose deletes b.outSL collects
	outSL  plog.ScopeLogs
	names  []string                        // slab for changed field lists
	counts [state.ChangeNoChange + 1]int64 // classifications per change type, added to the metric once per batch
}

// recEntry is one record state of the batch.
type recEntry struct {
	key   string
	rec   *state.Record // nil: no state
	dirty bool
}

// entry returns the index of skey's entry, adding it with rec if new.
func (b *batchState) entry(skey string, rec *state.Record) (int32, bool) {
	if i, ok := b.recs[skey]; ok {
		return i, false
	}
	i := int32(len(b.ents))
	b.ents = append(b.ents, recEntry{key: skey, rec: rec})
	b.recs[skey] = i
	return i, true
}

// set replaces the record of entry i and marks it for the next commit.
func (b *batchState) set(i int32, rec *state.Record) {
	e := &b.ents[i]
	e.rec = rec
	if !e.dirty {
		e.dirty = true
		b.dirty = append(b.dirty, i)
	}
}

// apply classifies items against the state and commits the state changes.
// It returns the derived delete events to append to the batch.
func (p *cdcProcessor) apply(ctx context.Context, items []*item, bb *batchBuf) (plog.Logs, error) {
	b := &batchState{bb: bb, recs: bb.index, ents: bb.ents[:0], runs: map[uint64]*state.Run{}, out: plog.NewLogs()}
	// Decoded records take their slices from the batch's slabs (reset when
	// the batch is forwarded).
	p.names.UseSlabs(&bb.slabs)
	defer func() {
		p.names.UseSlabs(nil)
		bb.ents = b.ents[:0] // keep a grown array for the next batch
	}()
	err := p.applyItems(ctx, b, items)
	p.addCounts(ctx, b)
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
			b.ents = b.ents[:0]
			continue
		}
		ent, err := p.record(ctx, b, it)
		if err != nil {
			return err
		}
		run, err := p.run(ctx, b, it.run, it.ev.BatchID)
		if err != nil {
			return err
		}
		if err := p.classify(ctx, b, it, ent, run); err != nil {
			return err
		}
	}
	return nil
}

// load reads the state of every record the batch touches, and of the runs
// not in memory yet, in one storage call.
func (p *cdcProcessor) load(ctx context.Context, b *batchState, items []*item) error {
	keys := b.bb.keys[:0]
	var runs []uint64 // runs to read (an incoming batch usually has one)
	for _, it := range items {
		if it.kind == kindEnd {
			break // records after a batch end are read after its scan
		}
		i, added := b.entry(it.skey, nil)
		if added {
			keys = append(keys, it.skey)
		}
		it.ent = i + 1
		if !p.st.RunLoaded(it.run) && !slices.Contains(runs, it.run) {
			runs = append(runs, it.run)
		}
	}
	nrec := len(keys)
	for _, r := range runs {
		keys = append(keys, state.RunKey(r))
	}
	b.bb.keys = keys
	if len(keys) == 0 {
		return nil
	}
	vals, err := p.st.Get(ctx, keys...)
	if err != nil {
		return err
	}
	for j, r := range runs {
		for _, it := range items {
			if it.run == r {
				run, err := p.st.LoadRun(r, it.ev.BatchID, vals[nrec+j])
				if err != nil {
					return err
				}
				b.runs[r] = run
				break
			}
		}
	}
	// One array for the batch's records, reused by the next batches.
	recs := b.bb.recs
	if cap(recs) < nrec {
		recs = make([]state.Record, nrec)
	}
	recs = recs[:nrec]
	b.bb.recs = recs
	for i, v := range vals[:nrec] {
		if v == nil {
			continue
		}
		r := &recs[i]
		if err := r.UnmarshalShared(v, &p.names); err != nil {
			return err
		}
		b.ents[i].rec = r // entries were added in the order of keys
	}
	return nil
}

// record returns the entry of it's record, reading its state if load did
// not (records after a batch end).
func (p *cdcProcessor) record(ctx context.Context, b *batchState, it *item) (int32, error) {
	if it.ent > 0 {
		return it.ent - 1, nil
	}
	if i, ok := b.recs[it.skey]; ok {
		return i, nil
	}
	vals, err := p.st.Get(ctx, it.skey)
	if err != nil {
		return 0, err
	}
	var r *state.Record
	if vals[0] != nil {
		r = &state.Record{}
		if err := r.UnmarshalShared(vals[0], &p.names); err != nil {
			return 0, err
		}
	}
	i, _ := b.entry(it.skey, r)
	return i, nil
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
func (p *cdcProcessor) classify(ctx context.Context, b *batchState, it *item, ent int32, run *state.Run) error {
	rec := b.ents[ent].rec
	if it.hasID && rec != nil {
		if m, ok := rec.FindMemo(it.evh); ok {
			it.replay = true
			it.change, it.prev, it.changed = m.Change, m.PrevHash, m.Fields
			it.oldVals = decodeValues(m.Old)
			p.tel.ProcessorCdcRedelivered.Add(ctx, 1)
			b.counts[it.change]++
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
			b.counts[it.change]++
			p.countRun(run, it.change)
			return nil
		}
		// rec was decoded for this batch and is replaced by next: it is
		// updated in place.
		it.change, it.prev = state.ChangeDelete, rec.RecHash
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
			it.prev = rec.RecHash // next is rec, updated in place
		}
		if it.fields != nil {
			p.sumFields(it, rec)
		}
		if it.change == state.ChangeUpdate && it.fields != nil && rec.FieldsOK {
			it.changed = diffFields(&b.names, rec.Fields, it.fields)
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
	b.set(ent, next)
	b.counts[it.change]++
	p.countRun(run, it.change)
	return nil
}

// sumFields fills in the per-field hashes of it. A record whose compared
// fields did not change has the stored hashes (same names and values): one
// is recomputed to make sure they were made with the current
// field_hash_key, and all are reused.
func (p *cdcProcessor) sumFields(it *item, rec *state.Record) {
	if it.change == state.ChangeNoChange && rec != nil && rec.FieldsOK && len(it.fields) > 0 &&
		sameNames(rec.Fields, it.fields) && p.fieldHash.sum(it.pairs, it.ends, 0) == rec.Fields[0].Sum {
		it.fields = rec.Fields
		return
	}
	p.fieldHash.sumAll(it.fields, it.pairs, it.ends)
}

func sameNames(a, b []state.FieldSum) bool {
	return slices.EqualFunc(a, b, func(x, y state.FieldSum) bool { return x.Name == y.Name })
}

func changeOf(equal bool) state.Change {
	if equal {
		return state.ChangeNoChange
	}
	return state.ChangeUpdate
}

// diffFields returns the names of fields added, removed or changed; both
// lists are sorted by name.
func diffFields(slab *[]string, old, cur []state.FieldSum) []string {
	n := 0
	for i, j := 0, 0; i < len(old) || j < len(cur); n++ {
		switch {
		case j == len(cur) || (i < len(old) && old[i].Name < cur[j].Name):
			i++
		case i == len(old) || cur[j].Name < old[i].Name:
			j++
		default:
			if old[i].Sum == cur[j].Sum {
				n--
			}
			i++
			j++
		}
	}
	if n == 0 {
		return nil
	}
	out := state.Take(slab, n)[:0]
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

// changeNames are the exported change types, indexed by state.Change.
var changeNames = [...]string{
	state.ChangeInsert: "insert", state.ChangeUpdate: "update", state.ChangeDelete: "delete", state.ChangeNoChange: "no_change",
}

// changeAttrs are the metric attribute options per change type, built once
// (building them per event allocates).
var changeAttrs = func() map[state.Change]metric.AddOption {
	m := map[state.Change]metric.AddOption{}
	for c, n := range changeNames {
		if n == "" {
			continue // ChangeNone
		}
		m[state.Change(c)] = metric.WithAttributeSet(attribute.NewSet(attribute.String("change_type", n)))
	}
	return m
}()

// addCounts adds a batch's classifications to the metric (once per change
// type: adding per event allocated).
func (p *cdcProcessor) addCounts(ctx context.Context, b *batchState) {
	for c, n := range b.counts {
		if n > 0 {
			p.tel.ProcessorCdcRecordsClassified.Add(ctx, n, changeAttrs[state.Change(c)])
		}
	}
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
	// All records are encoded into one buffer, each value a capped slice of
	// it; when the buffer grows, earlier values stay in the old array. (It
	// is not reused across batches: the storage API does not say that
	// clients copy the values they are given.)
	buf := make([]byte, 0, 256*len(b.dirty))
	for _, i := range b.dirty {
		e := &b.ents[i]
		start := len(buf)
		buf = e.rec.Marshal(buf)
		p.st.Put(e.key, buf[start:len(buf):len(buf)])
		e.dirty = false
	}
	b.dirty = b.dirty[:0]
	now := p.clock(ctx)
	for _, r := range b.runs {
		p.st.SaveRun(r, now)
	}
	clear(b.runs)
	return p.st.Flush(ctx)
}
