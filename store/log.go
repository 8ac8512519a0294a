package store

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"go.uber.org/zap"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/store/merkle"
)

// ErrStreamModified means a stream's stored entries and its stored tree do
// not fit together in a way no crash of the writer can explain: the store
// was changed outside the collector. Log refuses to write such a stream
// (an integrity alarm) rather than sign over the change.
var ErrStreamModified = errors.New("the stream was modified outside the collector")

// LogOptions configure a Log.
type LogOptions struct {
	// Window is how many recent keys per stream a backend without cheap
	// lookups remembers (see Backend.LookupAll); 0 means 200,000.
	Window int
	// Progress, when set, is told about long recoveries (building the tree
	// of an older trail, or adopting a crashed write's entries).
	Progress func(stream string, done, total int64)
}

// LogProgress is the Progress of every backend: one Info line per report,
// so a long first start (an older trail's tree being built) is visibly at work.
func LogProgress(logger *zap.Logger) func(stream string, done, total int64) {
	return func(stream string, done, total int64) {
		logger.Info("Building the Merkle tree of a stream from its stored entries", zap.String("stream", stream),
			zap.Int64("entries", done), zap.Int64("of", total))
	}
}

// Log is the one implementation of the store's write rules for every
// backend. For each Write it:
//
//  1. prepares every event: canonical document, hash check, validation;
//     what cannot be kept as an audit event becomes a dead letter;
//  2. resolves redeliveries before numbering: an event whose id is stored
//     with the same content hash is a Duplicate (no number); with another
//     content it is a Conflict, kept as a dead letter;
//  3. numbers the remaining entries, gaplessly, after the stream's tree;
//  4. stores them; a key found taken only now is resolved the same way, and
//     the number it took holds a gap entry, so numbering stays gapless;
//  5. folds newly stored events into their run summaries (each summary
//     records the last sequence folded, so a replay never counts twice);
//  6. appends every entry to the stream's Merkle tree and stores the tiles.
//
// docs/storage.md and docs/integrity.md describe the rules; both backends
// run the same conformance suite (store/storetest).
type Log struct {
	b    Backend
	opts LogOptions

	mu      sync.Mutex
	streams map[string]*streamState
}

type streamState struct {
	mu     sync.Mutex
	tree   *merkle.Builder // nil: (re)load before the next write
	recent *window         // nil when the backend looks every key up
}

// NewLog returns the rules over b.
func NewLog(b Backend, opts LogOptions) *Log {
	if opts.Window <= 0 {
		opts.Window = 200_000
	}
	return &Log{b: b, opts: opts, streams: map[string]*streamState{}}
}

func (l *Log) state(stream string) *streamState {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.streams[stream]
	if st == nil {
		st = &streamState{}
		l.streams[stream] = st
	}
	return st
}

// Tree returns the stream's tree as stored by the last successful write
// (loading it first if this Log has not written the stream yet).
func (l *Log) Tree(ctx context.Context, stream string) (tlog.Tree, error) {
	st := l.state(stream)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.tree == nil {
		if err := l.load(ctx, stream, st); err != nil {
			return tlog.Tree{}, err
		}
	}
	return st.tree.Tree(), nil
}

// Reload forgets what the Log keeps of stream between writes (its tree and
// its window of recent keys): the next write reads them from the store
// again. For a stream another writer wrote meanwhile (a Kafka partition
// that moved between collectors and back).
func (l *Log) Reload(stream string) {
	st := l.state(stream)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.tree, st.recent = nil, nil
}

// Write implements Writer.
func (l *Log) Write(ctx context.Context, stream string, events []StoredEvent) ([]Result, error) {
	if len(events) == 0 {
		return nil, nil
	}
	st := l.state(stream)
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.tree == nil {
		if err := l.load(ctx, stream, st); err != nil {
			return nil, err
		}
	}
	tx, err := l.b.Begin(ctx, stream)
	if err != nil {
		return nil, err
	}
	w := &write{l: l, st: st, tx: tx, stream: stream, events: events}
	results, err := w.run()
	if err != nil {
		tx.Rollback()
		// Part of the write may be stored (non-atomic backends): reload,
		// adopting whatever landed, before the next write numbers anything;
		// and remember its keys, so a retry finds them before numbering.
		st.tree = nil
		if st.recent != nil {
			for _, e := range w.numbered {
				st.recent.add(e.Key)
			}
		}
		return nil, err
	}
	return results, nil
}

// write is one Write call.
type write struct {
	l      *Log
	st     *streamState
	tx     Tx
	stream string
	events []StoredEvent

	entries  []*Entry // one per event, in order; nil once resolved as a duplicate
	results  []Result
	numbered []*Entry // entries that take a place, in sequence order
	// dups pairs an event with the earlier event of the same call it
	// duplicates; its sequence is that one's, known at the end.
	dups [][2]int
}

func (w *write) run() ([]Result, error) {
	w.results = make([]Result, len(w.events))
	w.entries = make([]*Entry, len(w.events))
	for i := range w.events {
		w.results[i].EventID = w.events[i].ID
		w.entries[i] = w.prepare(&w.events[i])
	}
	w.sameKeyTwice()
	if err := w.resolveStored(); err != nil {
		return nil, err
	}
	next := w.st.tree.Size() + 1
	for _, e := range w.entries {
		if e != nil {
			e.Sequence = next
			next++
			w.numbered = append(w.numbered, e)
		}
	}
	if err := w.store(w.numbered); err != nil {
		return nil, err
	}
	if err := w.foldRuns(); err != nil {
		return nil, err
	}
	if err := w.grow(); err != nil {
		return nil, err
	}
	if err := w.tx.Commit(); err != nil {
		return nil, err
	}
	if w.st.recent != nil {
		for _, e := range w.numbered {
			w.st.recent.add(e.Key)
		}
	}
	for _, d := range w.dups {
		i, j := d[0], d[1]
		if e := w.entries[j]; e != nil {
			w.results[i].Sequence, w.results[i].ExistingHash = e.Sequence, e.Hash
		} else {
			w.results[i] = w.results[j]
			w.results[i].EventID = w.events[i].ID
		}
		w.results[i].Outcome = Duplicate
	}
	for i, e := range w.entries {
		if e != nil {
			w.results[i].Sequence = e.Sequence
			w.results[i].Outcome = outcomeOf(e)
			if e.Kind != merkle.KindEvent {
				w.results[i].Reason = e.Reason
			}
			if e.Conflict {
				w.results[i].ExistingHash = e.ExistingHash
			}
		}
	}
	return w.results, nil
}

func outcomeOf(e *Entry) Outcome {
	switch {
	case e.Kind == merkle.KindEvent:
		return Stored
	case e.Conflict:
		return Conflict
	}
	return DeadLettered
}

// prepare turns an event into the entry it would be: an event, or a dead
// letter when it cannot be kept as one.
func (w *write) prepare(se *StoredEvent) *Entry {
	e := &se.Event
	doc := se.Document
	var err error
	if len(doc) == 0 {
		doc, err = e.AppendCanonical(nil)
	}
	if err != nil {
		// Not representable as canonical JSON (e.g. NaN): keep a readable
		// form so nothing is lost; it has no hash to cover.
		d := deadLetter(se, FallbackDocument(e), "event cannot be encoded as canonical JSON: "+err.Error())
		d.EventHash = ""
		return d
	}
	hash := hashHex(doc)
	switch {
	case se.DeadLetterReason != "":
		return deadLetter(se, doc, se.DeadLetterReason)
	case e.ID == "":
		return deadLetter(se, doc, "event id ("+auditevent.AttrEventID+") is empty")
	case se.Hash != "" && se.Hash != hash:
		// The stored hash must be recomputable from the stored document,
		// or verification would report tampering that never happened.
		return deadLetter(se, doc, fmt.Sprintf("hash mismatch: writer sent %s, content hashes to %s", se.Hash, hash))
	}
	return &Entry{Kind: merkle.KindEvent, Key: Key{ID: e.ID}, Event: se, Hash: hash, EventHash: hash, Document: doc}
}

// deadLetter keeps se with doc, its canonical document (unless the caller
// says otherwise), as a dead letter.
func deadLetter(se *StoredEvent, doc []byte, reason string) *Entry {
	h := hashHex(doc)
	return &Entry{Kind: merkle.KindDeadLetter, Key: Key{DeadLetter: true, ID: se.ID, DocHash: h}, Event: se,
		Hash: h, EventHash: h, Document: doc, Reason: reason}
}

// sameContent reports whether e is a redelivery of what ref holds: the
// same hash, or for an event the same content hash (it differs only in what
// the collector derives; computed here, on a collision, never on the hot
// path).
func sameContent(e *Entry, refHash string, refDoc []byte) bool {
	if refHash == e.Hash {
		return true
	}
	if e.Kind != merkle.KindEvent || refDoc == nil {
		return false
	}
	stored, err := auditevent.ParseCanonical(refDoc)
	if err != nil {
		return false
	}
	a, err1 := stored.ContentHash()
	b, err2 := e.Event.ContentHash()
	return err1 == nil && err2 == nil && a == b
}

// toConflict keeps e, whose id is stored (or written earlier in this call)
// with other content, as a conflict dead letter.
func toConflict(e *Entry, ref Ref) *Entry {
	d := deadLetter(e.Event, e.Document, fmt.Sprintf("conflict: event %s is stored with hash %s (sequence %d); received hash %s",
		e.Key.ID, ref.Hash, ref.Sequence, e.Hash))
	d.Conflict, d.ExistingHash, d.Sequence = true, ref.Hash, e.Sequence
	return d
}

// sameKeyTwice resolves keys that occur twice in this call: the later copy
// is a duplicate of the earlier one, or a conflict with it.
func (w *write) sameKeyTwice() {
	first := make(map[Key]int, len(w.entries))
	for i := 0; i < len(w.entries); i++ {
		e := w.entries[i]
		j, seen := first[e.Key]
		if !seen {
			first[e.Key] = i
			continue
		}
		if sameContent(e, w.entries[j].Hash, w.entries[j].Document) {
			w.duplicateOfEarlier(i, j)
			continue
		}
		// The earlier copy is stored by this call: a conflict with it. Its
		// dead letter may repeat too, so look at it again.
		d := deadLetter(e.Event, e.Document, fmt.Sprintf("conflict: event %s appears earlier in the same write with hash %s; received hash %s",
			e.Key.ID, w.entries[j].Hash, e.Hash))
		d.Conflict, d.ExistingHash = true, w.entries[j].Hash
		w.entries[i] = d
		i--
	}
}

// duplicateOfEarlier marks event i a duplicate of event j of the same call;
// its sequence is known once j is numbered.
func (w *write) duplicateOfEarlier(i, j int) {
	w.entries[i] = nil
	w.results[i].Outcome = Duplicate
	w.results[i].ExistingHash = w.entries[j].Hash
	w.dups = append(w.dups, [2]int{i, j})
}

// resolveStored asks the backend about the keys that may be stored and
// resolves those that are, before anything is numbered.
func (w *write) resolveStored() error {
	for round := 0; round < 3; round++ {
		var keys []Key
		for _, e := range w.entries {
			if e != nil && (w.st.recent == nil || w.st.recent.mayHold(e.Key)) {
				keys = append(keys, e.Key)
			}
		}
		if len(keys) == 0 {
			return nil
		}
		refs, err := w.tx.Lookup(keys)
		if err != nil {
			return err
		}
		changed := false
		for i, e := range w.entries {
			if e == nil {
				continue
			}
			ref, ok := refs[e.Key]
			if !ok {
				continue
			}
			if !sameContent(e, ref.Hash, ref.Document) {
				w.entries[i] = toConflict(e, ref)
				changed = true
				continue
			}
			w.entries[i] = nil
			w.results[i].Outcome, w.results[i].Sequence, w.results[i].ExistingHash = Duplicate, ref.Sequence, ref.Hash
		}
		if !changed {
			return nil
		}
	}
	return nil
}

// store appends the numbered entries until every one is final: a key taken
// after all (a non-atomic backend meets it only now) is resolved and its
// number filled with a gap; a document the backend rejects stays in its
// place as a dead letter.
func (w *write) store(pending []*Entry) error {
	for len(pending) > 0 {
		if err := w.tx.Append(pending); err != nil {
			return err
		}
		var next, taken []*Entry
		for _, e := range pending {
			switch e.Status {
			case Created:
			case Exists:
				taken = append(taken, e)
			case Rejected:
				next = append(next, w.replace(e, rejected(e)))
			case Failed:
				return fmt.Errorf("store: entry %d (%s) could not be written: %s", e.Sequence, e.Key.ID, e.StatusReason)
			default:
				return fmt.Errorf("store: backend left entry %d without a status", e.Sequence)
			}
		}
		if len(taken) > 0 {
			keys := make([]Key, len(taken))
			for i, e := range taken {
				keys[i] = e.Key
			}
			refs, err := w.tx.Lookup(keys)
			if err != nil {
				return err
			}
			for _, e := range taken {
				ref, ok := refs[e.Key]
				switch {
				case !ok:
					return fmt.Errorf("store: the key of entry %d (%s) was reported taken but is not stored", e.Sequence, e.Key.ID)
				case ref.Sequence == e.Sequence && ref.Hash == e.Hash:
					e.Status = Created // this writer stored it before and did not learn it (lost answer, crash)
				case !sameContent(e, ref.Hash, ref.Document):
					next = append(next, w.replace(e, toConflict(e, ref)))
				default:
					// A redelivery found only now: the stored copy stands and
					// the number it took holds a gap.
					w.duplicateAt(e, ref)
					next = append(next, w.replace(e, gap(w.stream, e.Sequence,
						fmt.Sprintf("redelivery of %s, stored at sequence %d, recognized after it was numbered", e.Key.ID, ref.Sequence))))
				}
			}
		}
		pending = next
	}
	return nil
}

func rejected(e *Entry) *Entry {
	d := deadLetter(e.Event, e.Document, e.StatusReason)
	d.Sequence = e.Sequence
	return d
}

// replace puts r in e's place (same sequence) and returns it.
func (w *write) replace(e, r *Entry) *Entry {
	r.Sequence = e.Sequence
	for i, x := range w.entries {
		if x == e {
			w.entries[i] = r
		}
	}
	for i, x := range w.numbered {
		if x == e {
			w.numbered[i] = r
		}
	}
	return r
}

// duplicateAt records that the event of entry e is a duplicate of ref; e
// leaves the events' entries (its number is filled by the caller).
func (w *write) duplicateAt(e *Entry, ref Ref) {
	for i, x := range w.entries {
		if x == e {
			w.entries[i] = nil
			w.results[i].Outcome, w.results[i].Sequence, w.results[i].ExistingHash = Duplicate, ref.Sequence, ref.Hash
		}
	}
}

// gap is the entry of a number that holds no event.
func gap(stream string, seq int64, reason string) *Entry {
	doc, _ := json.Marshal(map[string]any{"gap": map[string]any{"stream": stream, "sequence": seq, "reason": reason}})
	h := hashHex(doc)
	return &Entry{Kind: merkle.KindGap, Sequence: seq, Key: Key{DeadLetter: true, DocHash: h}, Hash: h,
		Document: doc, Reason: reason}
}

// foldRuns folds the newly stored events into their run summaries, in
// sequence order, each at most once.
func (w *write) foldRuns() error {
	var stored []*Entry
	for _, e := range w.numbered {
		if e.Kind == merkle.KindEvent && e.Event.BatchID != "" {
			stored = append(stored, e)
		}
	}
	return foldInto(w.tx, w.stream, stored)
}

func foldInto(tx Tx, stream string, stored []*Entry) error {
	if len(stored) == 0 {
		return nil
	}
	var ids []string
	for _, e := range stored {
		if !slices.Contains(ids, e.Event.BatchID) {
			ids = append(ids, e.Event.BatchID)
		}
	}
	runs, err := tx.Runs(ids)
	if err != nil {
		return err
	}
	var changed []*Run
	for _, e := range stored {
		r := runs[e.Event.BatchID]
		if r == nil {
			r = &Run{}
			runs[e.Event.BatchID] = r
		}
		if !FoldOnce(r, stream, e.Sequence, &e.Event.Event) {
			continue
		}
		if !slices.Contains(changed, r) {
			changed = append(changed, r)
		}
	}
	if len(changed) == 0 {
		return nil
	}
	return tx.PutRuns(changed)
}

// FoldOnce applies the event at seq of stream to r unless r already
// reflects it, and reports whether r changed. Verification folds with it
// too, so that an intact summary is byte for byte what it recomputes.
func FoldOnce(r *Run, stream string, seq int64, e *auditevent.Event) bool {
	if r.Through == nil && r.Events > 0 {
		// A summary from before summaries recorded what they cover: it
		// already counts every event stored with it.
		r.Through = map[string]int64{stream: seq}
		return true
	}
	if r.Through[stream] >= seq {
		return false
	}
	ApplyToRun(r, e)
	if r.Through == nil {
		r.Through = map[string]int64{}
	}
	r.Through[stream] = seq
	return true
}

// grow appends every numbered entry to the tree and stores the tiles.
func (w *write) grow() error {
	slices.SortFunc(w.numbered, func(a, b *Entry) int { return cmp.Compare(a.Sequence, b.Sequence) })
	for _, e := range w.numbered {
		if e.Sequence != w.st.tree.Size()+1 {
			return fmt.Errorf("store: entry %d follows a tree of size %d", e.Sequence, w.st.tree.Size())
		}
		w.st.tree.Append(merkle.LeafHash(w.stream, e.Sequence, e.Kind, e.Hash))
	}
	return w.tx.PutTree(w.st.tree.Tree(), w.st.tree.Tiles())
}

// load brings the stream's tree into memory from the store, adopting the
// entries stored after it (an older trail without a tree, or the entries
// of a write a crash interrupted) and filling numbers such a write left
// empty with gaps.
func (l *Log) load(ctx context.Context, stream string, st *streamState) error {
	head, err := l.b.Head(ctx, stream)
	if err != nil {
		return err
	}
	var r tlog.HashReader = unverifiedReader{head.Tiles}
	if head.Root != nil {
		r = tlog.TileHashReader(tlog.Tree{N: head.Size, Hash: *head.Root}, head.Tiles)
	}
	tree, err := merkle.Load(head.Size, r)
	if err != nil {
		return fmt.Errorf("%w: the stored tree of stream %q does not load: %v", ErrStreamModified, stream, err)
	}
	var tail []*Entry
	expected := head.Size + 1
	err = l.b.Tail(ctx, stream, head.Size, func(e *Entry) error {
		switch {
		case e.Sequence < expected:
			return fmt.Errorf("%w: stream %q has two entries at sequence %d", ErrStreamModified, stream, e.Sequence)
		case head.Size > 0 && l.b.Atomic():
			// Entries beyond a tree stored in the same transaction cannot be
			// left over from a crash.
			return fmt.Errorf("%w: stream %q has an entry at sequence %d beyond its tree of size %d", ErrStreamModified, stream, e.Sequence, head.Size)
		}
		for ; expected < e.Sequence; expected++ {
			tail = append(tail, gap(stream, expected, "no entry was stored under this number: the write that reserved it was interrupted"))
		}
		tail = append(tail, e)
		expected++
		if l.opts.Progress != nil && len(tail)%100_000 == 0 {
			l.opts.Progress(stream, int64(len(tail)), 0)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(tail) > 0 {
		if err := l.adopt(ctx, stream, tree, tail); err != nil {
			return err
		}
	}
	st.tree = tree
	if !l.b.LookupAll() && st.recent == nil {
		st.recent = newWindow(l.opts.Window)
		if err := l.b.RecentKeys(ctx, stream, l.opts.Window, st.recent.add); err != nil {
			st.tree = nil
			return err
		}
	}
	return nil
}

// adopt makes the tail part of the tree: gaps stored, events folded into
// their runs (at most once), tiles stored.
func (l *Log) adopt(ctx context.Context, stream string, tree *merkle.Builder, tail []*Entry) error {
	tx, err := l.b.Begin(ctx, stream)
	if err != nil {
		return err
	}
	var gaps, stored []*Entry
	for _, e := range tail {
		switch {
		case e.Kind == merkle.KindGap && e.Status != Created:
			gaps = append(gaps, e)
		case e.Kind == merkle.KindEvent && e.Event != nil && e.Event.BatchID != "":
			stored = append(stored, e)
		}
	}
	if len(gaps) > 0 {
		if err := tx.Append(gaps); err != nil {
			tx.Rollback()
			return err
		}
		for _, g := range gaps {
			if g.Status != Created {
				tx.Rollback()
				return fmt.Errorf("store: gap %d of stream %q could not be stored: %s", g.Sequence, stream, g.StatusReason)
			}
		}
	}
	if err := foldInto(tx, stream, stored); err != nil {
		tx.Rollback()
		return err
	}
	for i, e := range tail {
		tree.Append(merkle.LeafHash(stream, e.Sequence, e.Kind, e.Hash))
		if l.opts.Progress != nil && (i+1)%100_000 == 0 {
			l.opts.Progress(stream, int64(i+1), int64(len(tail)))
		}
	}
	if err := tx.PutTree(tree.Tree(), tree.Tiles()); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if l.opts.Progress != nil {
		l.opts.Progress(stream, int64(len(tail)), int64(len(tail)))
	}
	return nil
}

// unverifiedReader reads stored hashes from tiles without a known root
// (a backend that stores no root with its tiles): Load recomputes the root
// from them.
type unverifiedReader struct{ tiles tlog.TileReader }

func (u unverifiedReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	ts := make([]tlog.Tile, len(indexes))
	for i, x := range indexes {
		ts[i] = tlog.TileForIndex(merkle.TileHeight, x)
	}
	data, err := u.tiles.ReadTiles(ts)
	if err != nil {
		return nil, err
	}
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if out[i], err = tlog.HashFromTile(ts[i], data[i], x); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func hashHex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
