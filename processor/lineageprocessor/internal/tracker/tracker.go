package tracker

import (
	"context"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/batchaudit/batchaudit/auditevent"
)

// Tracker holds the lineage state of all active runs. It is not safe for
// concurrent use; the processor serialises calls.
type Tracker struct {
	cfg  Config
	runs map[string]*run

	// resident is the FIFO of segments whose bodies are in memory; the
	// oldest are spilled first. Stale entries are skipped lazily.
	resident      []*segment
	dropped       int // segments of dropped runs possibly still in resident
	residentBytes int64
	residentCount int
	open          int64 // lineages in state open, over all runs

	closed       map[string]*closedRun // settled runs and tombstones (settled.go)
	closedOrder  []string              // in settle order; the first tombs are tombstones
	tombs        int
	settledDirty bool
	indexDirty   bool

	pending   map[string][]byte // store writes (nil: delete) for the next Checkpoint
	dirtySegs []*segment        // segments touched since the last Checkpoint
}

// New returns an empty tracker; call Load to restore persisted state.
func New(cfg Config) *Tracker {
	if cfg.SegmentSize <= 0 {
		cfg.SegmentSize = 256
	}
	if cfg.MaxFindingIDs <= 0 {
		cfg.MaxFindingIDs = 100
	}
	if cfg.MaxClosedRuns <= 0 {
		cfg.MaxClosedRuns = 256
	}
	if cfg.SettledRetention <= 0 {
		cfg.SettledRetention = 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Tracker{cfg: cfg, runs: map[string]*run{}, closed: map[string]*closedRun{}}
}

// ActiveLineages is the number of lineages read but not yet written, skipped,
// errored or merged, over all runs.
func (t *Tracker) ActiveLineages() int64 { return t.open }

// ActiveRuns is the number of runs in progress.
func (t *Tracker) ActiveRuns() int { return len(t.runs) }

// ResidentLineages is the number of lineages whose chains are in memory.
func (t *Tracker) ResidentLineages() int { return t.residentCount }

// ResidentBytes is the estimated size of the chains held in memory.
func (t *Tracker) ResidentBytes() int64 { return t.residentBytes }

// Handle folds one event into the state and appends any derived events to out.
func (t *Tracker) Handle(ctx context.Context, in *Input, out []auditevent.Event) []auditevent.Event {
	if in.BatchID == "" {
		return out
	}
	if c, done := t.closed[in.BatchID]; done {
		return t.late(ctx, c, in, out)
	}
	r := t.runs[in.BatchID]
	if r == nil {
		r = newRun(in.BatchID)
		t.runs[in.BatchID] = r
		t.indexDirty = true
	}
	if r.seenBefore(in.EventID) {
		if t.cfg.Hooks.Duplicate != nil {
			t.cfg.Hooks.Duplicate()
		}
		if in.Name == auditevent.RecordWrite {
			// Its lineage record may not have reached the exporter the
			// first time: emit it again (same id), counting nothing.
			out = t.write(ctx, r, in, true, out)
			t.enforceBudget(ctx)
		}
		return out
	}
	r.note(in, t.cfg.Now().UnixNano())
	r.dirtyMeta = true
	switch in.Name {
	case auditevent.RecordRead:
		t.read(ctx, r, in, &out)
	case auditevent.RecordTransform:
		out = t.transform(ctx, r, in, out)
	case auditevent.RecordWrite:
		out = t.write(ctx, r, in, false, out)
	case auditevent.RecordSkip:
		r.observed.Skipped++
		t.terminate(ctx, r, in, stateSkipped)
	case auditevent.RecordError:
		// An error without a record id is the run's, not a record's.
		if in.RecordID != "" {
			r.observed.Errored++
			t.terminate(ctx, r, in, stateErrored)
		}
	case auditevent.BatchStart, auditevent.BatchProgress:
		r.addDatasets(in)
		if c := t.closed[r.parent]; c != nil && r.end == nil && r.startOnly {
			// A child that starts after its parent settled ends with it.
			r.end = &runEnd{At: t.cfg.Now().UnixNano(), Time: in.Time.UnixNano(), Result: c.result, ByParent: true}
		}
	case auditevent.BatchEnd:
		r.addDatasets(in)
		if r.end == nil || r.end.ByParent {
			r.end = &runEnd{At: t.cfg.Now().UnixNano(), Time: in.Time.UnixNano(), Result: in.Result,
				Counters: in.Counters, Statistics: in.OpenLineage}
		}
		if t.cfg.SettleTime <= 0 {
			out = t.settle(ctx, r, false, out)
		}
	}
	t.enforceBudget(ctx)
	return out
}

func (r *run) addDatasets(in *Input) {
	for _, d := range in.Inputs {
		if !slices.Contains(r.inputs, d) {
			r.inputs = append(r.inputs, d)
			r.dirtyMeta = true
		}
	}
	for _, d := range in.Outputs {
		if !slices.Contains(r.outputs, d) {
			r.outputs = append(r.outputs, d)
			r.dirtyMeta = true
		}
	}
	if len(in.ColumnLineage) > 0 {
		if r.columns == nil {
			r.columns = map[string]any{}
		}
		for k, v := range in.ColumnLineage {
			r.columns[k] = v
		}
		r.dirtyMeta = true
	}
}

// read starts a lineage, or completes one that later events of the record
// started before the read arrived (an orphan: a transform, write, skip or
// error with no read yet), so the chain is the same in any arrival order.
func (t *Tracker) read(ctx context.Context, r *run, in *Input, out *[]auditevent.Event) {
	r.observed.Read++
	key := in.LineageID
	if key == "" {
		key = auditevent.DeterministicID("lineage", r.batchID, in.Source.String(), in.RecordID)
	}
	l := r.lineages[key]
	if l != nil && !adoptable(l) {
		return // redelivered read
	}
	if l == nil && in.RecordID != "" {
		if o := r.byRecord[in.RecordID]; o != nil && adoptable(o) {
			l = o
		}
	}
	if l == nil && in.RecordHash != "" {
		// Steps of a record whose id changed, sent before its read, name
		// the read's hash as their input.
		if o := r.byStart[hashKey(in.RecordHash)]; o != nil && adoptable(o) {
			l = o
		}
	}
	if l == nil {
		l = t.newLineage(r, key, in.RecordID)
	} else if t.load(ctx, l); l.state != stateConsumed {
		// A chain already named as a parent keeps its key.
		t.rekey(r, l, key)
	}
	before := l.body.size()
	l.flags |= flagRead
	l.src = r.dataset(in.Source)
	l.body.source = hop{namespace: in.Source.Namespace, name: in.Source.Name, recordID: in.RecordID, hash: in.RecordHash, time: in.Time.UnixNano()}
	l.body.startHash = in.RecordHash
	l.body.startAlt = in.SenderHash
	t.account(l, l.body.size()-before)
	r.alias(l, in.SenderHash)
	if in.RecordID != "" && r.byRecord[in.RecordID] == nil {
		r.byRecord[in.RecordID] = l
	}
	if !l.hasHash && in.RecordHash != "" {
		r.index(l, "", in.RecordHash)
	}
	t.claim(ctx, r, l)
	*out = t.resolveWaiting(ctx, r, in.RecordID, l, *out)
	*out = t.emitPending(ctx, r, l, false, *out)
}

// claim takes over an orphan whose write named l's latest hash: a write of
// a renamed record that came before l's read or last step, and that in
// order would have found l by that hash.
func (t *Tracker) claim(ctx context.Context, r *run, l *lineage) {
	if !l.hasHash || adoptable(l) {
		return
	}
	if o := r.byStart[l.hash]; o != nil && o != l && adoptable(o) {
		t.absorb(ctx, r, l, o)
	}
}

// adoptable reports whether l was started by events of its record that came
// before its read (a transform, write, skip or error): a read adopts it.
func adoptable(l *lineage) bool { return l.flags&(flagRead|flagDerived) == 0 }

// waitsForStart reports whether a write of l must wait: a record's own read,
// or a new record's first parent, has not arrived yet. Its body is loaded.
func (t *Tracker) waitsForStart(ctx context.Context, l *lineage) bool {
	if l.flags&flagRead != 0 {
		return false
	}
	if l.flags&flagDerived == 0 {
		return true
	}
	t.load(ctx, l)
	return len(l.body.parents) == 0
}

// rekey gives l the key the in-order events would have given it; it has
// emitted nothing under the old one.
func (t *Tracker) rekey(r *run, l *lineage, key string) {
	if l.key == key {
		return
	}
	delete(r.lineages, l.key)
	l.key = key
	r.lineages[key] = l
	t.touch(l.seg)
}

// resolveWaiting makes l a parent of the joins and splits that named its
// record id as an input before it was read; their writes that waited for a
// parent are emitted now.
func (t *Tracker) resolveWaiting(ctx context.Context, r *run, recordID string, l *lineage, out []auditevent.Event) []auditevent.Event {
	ws := r.waiting[recordID]
	if len(ws) == 0 {
		return out
	}
	delete(r.waiting, recordID)
	for _, w := range ws {
		if w == l {
			continue
		}
		t.load(ctx, w)
		t.load(ctx, l)
		before := w.body.size()
		w.body.unresolved = slices.DeleteFunc(w.body.unresolved, func(s string) bool { return s == recordID })
		if !slices.Contains(w.body.parents, l.key) {
			if len(w.body.parents) == 0 && w.flags&flagDerived != 0 {
				// As in order: a new record's chain shows where its first
				// input came from.
				w.body.source, w.src = l.body.source, l.src
			}
			w.body.parents = append(w.body.parents, l.key)
		}
		t.account(w, w.body.size()-before)
		if l.state == stateOpen {
			t.setState(ctx, l, stateConsumed)
		}
		out = t.emitPending(ctx, r, w, false, out)
	}
	return out
}

func (t *Tracker) newLineage(r *run, key, recordID string) *lineage {
	var seg *segment
	if n := len(r.segments); n > 0 && len(r.segments[n-1].lineages) < t.cfg.SegmentSize && r.segments[n-1].resident {
		seg = r.segments[n-1]
	} else {
		seg = &segment{run: r, n: len(r.segments), resident: true}
		r.segments = append(r.segments, seg)
		t.resident = append(t.resident, seg)
		r.dirtyMeta = true
	}
	l := &lineage{key: key, recordID: recordID, src: -1, seg: seg, body: &body{}}
	seg.lineages = append(seg.lineages, l)
	t.touch(seg)
	r.lineages[key] = l
	t.open++
	t.residentCount++
	return l
}

// account adds delta bytes of l's body to the memory budget.
func (t *Tracker) account(l *lineage, delta int64) {
	t.touch(l.seg)
	if l.body == nil || !l.seg.resident {
		return
	}
	l.seg.bytes += delta
	t.residentBytes += delta
}

// find locates the lineage an event continues.
func (t *Tracker) find(ctx context.Context, r *run, in *Input) *lineage {
	if in.LineageID != "" {
		if l := r.lineages[in.LineageID]; l != nil {
			return l
		}
	}
	if in.RecordID != "" {
		if l := r.byRecord[in.RecordID]; l != nil {
			if adoptable(l) && in.InputHash != "" {
				// Events of a renamed record came before the step that
				// renames it: the chain it continues (found by hash) takes
				// them over, as if they had come in order.
				if m := r.byHash[hashKey(in.InputHash)]; m != nil && m != l && !adoptable(m) {
					t.absorb(ctx, r, m, l)
					return m
				}
			}
			return l
		}
	}
	for _, h := range [...]string{in.InputHash, in.RecordHash} {
		if h != "" {
			if l := r.byHash[hashKey(h)]; l != nil {
				return l
			}
		}
	}
	return nil
}

// absorb moves what the orphan o collected (steps, writes, outcome) into l
// and leaves o inert.
func (t *Tracker) absorb(ctx context.Context, r *run, l, o *lineage) {
	t.load(ctx, l)
	t.load(ctx, o)
	before := l.body.size()
	for _, st := range o.body.steps {
		if !slices.Contains(l.body.steps, st) {
			l.body.steps = append(l.body.steps, st)
		}
	}
	for _, p := range o.body.pending {
		if !slices.Contains(l.body.pending, p) {
			l.body.pending = append(l.body.pending, p)
		}
	}
	if l.body.writeHash == "" {
		l.body.writeHash = o.body.writeHash
	}
	if len(l.body.pending) > 0 {
		l.flags |= flagPending
	}
	t.account(l, l.body.size()-before)
	if o.state != stateOpen && l.state == stateOpen {
		t.setState(ctx, l, o.state)
	}
	before = o.body.size()
	o.body.steps, o.body.pending = nil, nil
	o.flags &^= flagPending
	t.account(o, o.body.size()-before)
	t.setState(ctx, o, stateConsumed)
	r.byRecord[o.recordID] = l
}

// setState changes l's state; the segment is loaded first so the stored copy
// written later carries the change.
func (t *Tracker) setState(ctx context.Context, l *lineage, s uint8) {
	t.load(ctx, l)
	if l.state == stateOpen && s != stateOpen {
		t.open--
	}
	l.state = s
	t.touch(l.seg)
}

func (t *Tracker) transform(ctx context.Context, r *run, in *Input, out []auditevent.Event) []auditevent.Event {
	st := step{name: in.StepName, typ: in.StepType, subtype: in.StepSubtype, params: in.StepParams,
		inHash: in.InputHash, outHash: in.RecordHash, outAlt: in.SenderHash, seq: in.StepSeq, time: in.Time.UnixNano(),
		multi: len(in.InputRecordIDs) > 1}
	var l *lineage
	if len(in.InputRecordIDs) > 0 && !(len(in.InputRecordIDs) == 1 && in.InputRecordIDs[0] == in.RecordID) {
		l = t.merge(ctx, r, in)
	} else if l = t.find(ctx, r, in); l == nil {
		// A transform with no read (yet): keep the chain for the read.
		l = t.newLineage(r, t.orphanKey(r, in), in.RecordID)
	}
	t.load(ctx, l)
	for _, s := range l.body.steps {
		if s == st {
			return out // redelivered step
		}
	}
	before := l.body.size()
	l.body.steps = append(l.body.steps, st)
	if in.RecordID != "" {
		l.recordID = in.RecordID
	}
	t.account(l, l.body.size()-before)
	// Indexed by the output of its last step in sequence, whatever the
	// order the steps came in.
	r.index(l, in.RecordID, lastHash(l.body))
	r.alias(l, in.SenderHash)
	if adoptable(l) {
		// A read whose record id differs from the step's finds it by hash.
		if h := sortedSteps(l.body.steps)[0].inHash; h != "" {
			r.byStart[hashKey(h)] = l
		}
	} else {
		t.claim(ctx, r, l)
	}
	return t.emitPending(ctx, r, l, false, out) // a write may have waited for this step
}

// merge handles a step with explicit input records: a join or merge (several
// inputs) or a split (one input, a new record). The lineage named by the event
// (lineage id, or an input with the event's record id) continues; every other
// input becomes a parent and is consumed.
func (t *Tracker) merge(ctx context.Context, r *run, in *Input) *lineage {
	var cont *lineage
	if in.LineageID != "" {
		cont = r.lineages[in.LineageID]
	}
	if cont == nil && slices.Contains(in.InputRecordIDs, in.RecordID) {
		if cont = r.byRecord[in.RecordID]; cont == nil {
			// Its own record, not read yet: the read will adopt it.
			cont = t.newLineage(r, t.orphanKey(r, in), in.RecordID)
			r.index(cont, in.RecordID, "")
		}
	}
	var parents []*lineage
	var unresolved []string
	for _, id := range in.InputRecordIDs {
		p := r.byRecord[id]
		switch {
		case p == nil:
			unresolved = append(unresolved, id)
		case p != cont && !slices.Contains(parents, p):
			parents = append(parents, p)
		}
	}
	if cont == nil {
		key := in.LineageID
		if key == "" {
			ids := slices.Clone(in.InputRecordIDs)
			sort.Strings(ids)
			key = auditevent.DeterministicID("lineage", r.batchID, "derived", in.RecordID, strings.Join(ids, "\x00"))
		}
		if cont = r.lineages[key]; cont == nil {
			if o := r.byRecord[in.RecordID]; in.RecordID != "" && o != nil && adoptable(o) {
				// Events of the new record came before the step that made
				// it: they continue here.
				cont = o
				t.load(ctx, cont)
				t.rekey(r, cont, key)
			} else {
				cont = t.newLineage(r, key, in.RecordID)
			}
			cont.flags |= flagDerived
			if len(parents) > 0 {
				// The chain shows where its first input came from; parents
				// lead to the rest.
				p := parents[0]
				t.load(ctx, p)
				before := cont.body.size()
				cont.body.source = p.body.source
				cont.src = p.src
				if len(parents) == 1 {
					cont.body.startHash = lastHash(p.body)
				}
				t.account(cont, cont.body.size()-before)
			}
		}
	}
	t.load(ctx, cont)
	before := cont.body.size()
	defer func() { t.account(cont, cont.body.size()-before) }()
	for _, p := range parents {
		if !slices.Contains(cont.body.parents, p.key) {
			cont.body.parents = append(cont.body.parents, p.key)
		}
		if p.state == stateOpen {
			t.setState(ctx, p, stateConsumed)
		}
	}
	for _, u := range unresolved {
		if !slices.Contains(cont.body.unresolved, u) {
			cont.body.unresolved = append(cont.body.unresolved, u)
			r.waiting[u] = append(r.waiting[u], cont)
		}
	}
	return cont
}

// lastHash is the hash a chain's next step should consume.
func lastHash(b *body) string {
	h, _ := lastHashes(b)
	return h
}

// lastHashes is lastHash and, when the job sent it in another form, that.
func lastHashes(b *body) (string, string) {
	h, alt := b.startHash, b.startAlt
	for _, s := range sortedSteps(b.steps) {
		h, alt = s.outHash, s.outAlt
	}
	return h, alt
}

func sortedSteps(steps []step) []step {
	if slices.IsSortedFunc(steps, cmpStep) {
		return steps
	}
	s := slices.Clone(steps)
	slices.SortStableFunc(s, cmpStep)
	return s
}

func cmpStep(a, b step) int {
	if a.seq != b.seq {
		if a.seq < b.seq {
			return -1
		}
		return 1
	}
	switch {
	case a.time < b.time:
		return -1
	case a.time > b.time:
		return 1
	}
	return 0
}

func (t *Tracker) terminate(ctx context.Context, r *run, in *Input, s uint8) {
	l := t.find(ctx, r, in)
	if l == nil {
		if in.RecordID == "" {
			return
		}
		// Before its read: keep the outcome for the read to find.
		l = t.newLineage(r, t.orphanKey(r, in), in.RecordID)
		r.index(l, in.RecordID, "")
	}
	if l.state != stateWritten {
		t.setState(ctx, l, s)
	}
}

// orphanKey names a lineage started by an event that came before its read;
// a read that arrives later gives it its own key.
func (t *Tracker) orphanKey(r *run, in *Input) string {
	if in.LineageID != "" {
		return in.LineageID
	}
	return auditevent.DeterministicID("lineage", r.batchID, "orphan", in.RecordID)
}

// write completes a lineage. A write whose read (or parent) has not
// arrived waits in the lineage until it does, or until the run settles, so
// its lineage record is the same in any arrival order. A replay (a
// redelivered write) emits the chain again without counting anything.
func (t *Tracker) write(ctx context.Context, r *run, in *Input, replay bool, out []auditevent.Event) []auditevent.Event {
	if !replay {
		r.observed.Written++
	}
	var l *lineage
	if len(in.InputRecordIDs) > 0 && !(len(in.InputRecordIDs) == 1 && in.InputRecordIDs[0] == in.RecordID) {
		l = t.merge(ctx, r, in)
		out = t.emitPending(ctx, r, l, false, out)
	} else {
		l = t.find(ctx, r, in)
	}
	if l == nil {
		if replay {
			return out
		}
		l = t.newLineage(r, t.orphanKey(r, in), in.RecordID)
		r.index(l, in.RecordID, in.RecordHash)
	}
	t.load(ctx, l)
	target := hop{namespace: in.Target.Namespace, name: in.Target.Name, recordID: in.RecordID, hash: in.RecordHash, time: in.Time.UnixNano()}
	if in.InputHash != "" && l.body.writeHash != in.InputHash {
		before := l.body.size()
		l.body.writeHash = in.InputHash
		t.account(l, l.body.size()-before)
	}
	if t.waitsForStart(ctx, l) || !t.continuous(ctx, r, l, target) {
		if adoptable(l) {
			// A chain that ends in this hash (found by hash, as a write
			// coming in order would be) takes the write over when it comes.
			for _, h := range [...]string{in.InputHash, in.RecordHash} {
				if h != "" {
					r.byStart[hashKey(h)] = l
					break
				}
			}
		}
		if !replay && !slices.Contains(l.body.pending, target) {
			before := l.body.size()
			l.body.pending = append(l.body.pending, target)
			l.flags |= flagPending
			t.account(l, l.body.size()-before)
		}
		if l.state != stateWritten {
			t.setState(ctx, l, stateWritten)
		}
		return out
	}
	out = t.complete(ctx, r, l, target, replay, out)
	return out
}

// complete emits the lineage record of l written to target and counts it.
func (t *Tracker) complete(ctx context.Context, r *run, l *lineage, target hop, replay bool, out []auditevent.Event) []auditevent.Event {
	out = t.emitChain(ctx, r, l, target, "", out)
	if l.state != stateWritten {
		t.setState(ctx, l, stateWritten)
	}
	if replay {
		return out
	}
	if l.flags&flagCounted == 0 {
		l.flags |= flagCounted
		if t.cfg.Hooks.Completed != nil {
			t.cfg.Hooks.Completed(1)
		}
	}
	// One written record counts once for each source it derives from.
	dst := r.dataset(auditevent.Dataset{Namespace: target.namespace, Name: target.name})
	for _, src := range t.roots(ctx, r, l) {
		r.edges[edgeKey{src, dst}]++
	}
	r.dirtyMeta = true
	return out
}

// emitPending emits the writes that waited, once their chain is complete
// (see continuous), or all of them when force is set (at settlement).
func (t *Tracker) emitPending(ctx context.Context, r *run, l *lineage, force bool, out []auditevent.Event) []auditevent.Event {
	if l.flags&flagPending == 0 || !force && t.waitsForStart(ctx, l) {
		return out
	}
	t.load(ctx, l)
	var keep, ready []hop
	for _, target := range l.body.pending {
		if force || t.continuous(ctx, r, l, target) {
			ready = append(ready, target)
		} else {
			keep = append(keep, target)
		}
	}
	if len(ready) == 0 {
		return out
	}
	before := l.body.size()
	l.body.pending = keep
	if len(keep) == 0 {
		l.flags &^= flagPending
	}
	t.account(l, l.body.size()-before)
	for _, target := range ready {
		out = t.complete(ctx, r, l, target, false, out)
	}
	return out
}

// continuous reports whether the chain of l is complete up to a write: no
// input of a join unread, and unbroken to the write's hash (its input hash,
// else its record hash). Then its lineage record is emitted right away. A
// write whose chain has a gap waits for what may still arrive, or for the
// run to settle, so the record is the same in any arrival order. Where
// hashes are missing there is nothing to wait for.
func (t *Tracker) continuous(ctx context.Context, r *run, l *lineage, target hop) bool {
	t.load(ctx, l)
	if len(l.body.unresolved) > 0 {
		return false
	}
	w := l.body.writeHash
	if w == "" {
		w = target.hash
	}
	return !t.broken(ctx, r, l, w)
}

// roots returns the distinct source datasets l derives from.
func (t *Tracker) roots(ctx context.Context, r *run, l *lineage) []int32 {
	if len(l.body.parents) == 0 {
		if l.flags&flagRead != 0 && l.src >= 0 {
			return []int32{l.src}
		}
		return nil
	}
	var acc []int32
	seen := map[*lineage]bool{}
	var walk func(x *lineage)
	walk = func(x *lineage) {
		if seen[x] {
			return
		}
		seen[x] = true
		if x.flags&flagRead != 0 && x.src >= 0 && !slices.Contains(acc, x.src) {
			acc = append(acc, x.src)
		}
		t.load(ctx, x)
		for _, p := range x.body.parents {
			if pl := r.lineages[p]; pl != nil {
				walk(pl)
			}
		}
	}
	walk(l)
	return acc
}
