package esstore

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"go.uber.org/zap"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/canonical"
	"github.com/batchaudit/batchaudit/store"
)

type itemKind uint8

const (
	eventItem itemKind = iota // goes to <prefix>-events
	deadItem                  // goes to <prefix>-deadletters
)

// item is one event of a Write on its way to a final outcome. An event item
// can turn into a dead letter (rejected by the mapping, or a conflict); it
// then keeps its sequence number, so the stream stays gapless.
type item struct {
	ev   *store.StoredEvent
	doc  []byte // canonical JSON: what the hash covers and reads rebuild from
	hash string
	kind itemKind
	id   string // the document _id
	key  string // the key of its reserved number in streamState.pending
	seq  int64

	// Dead letters only.
	outcome      store.Outcome // DeadLettered or Conflict
	reason       string
	errType      string
	existingHash string

	dupOf       *item // the same key earlier in this Write
	line        []byte
	done        bool
	stored      bool // newly stored: folds into its run
	retryReason string
	res         store.Result
}

// writer is the state of one Write call.
type writer struct {
	s        *Store
	st       *streamState
	stream   string
	ingested string
}

// Write implements store.Writer; see docs/storage.md for the flow. A
// non-nil error (retryable unless consumererror.IsPermanent) means no
// outcome is reported; the numbers reserved for the events are kept for the
// retry.
func (s *Store) Write(ctx context.Context, stream string, events []store.StoredEvent) ([]store.Result, error) {
	if len(events) == 0 {
		return nil, nil
	}
	st, err := s.lockStream(ctx, stream)
	if err != nil {
		return nil, err
	}
	defer st.unlock()
	w := &writer{s: s, st: st, stream: stream, ingested: s.now().UTC().Format(timeLayout)}
	items := w.prepare(events)
	if err := w.precheck(ctx, items); err != nil {
		return nil, err
	}
	for _, it := range items {
		if !it.done && it.dupOf == nil {
			it.seq = st.reserve(it.key)
		}
	}
	if err := w.send(ctx, items); err != nil {
		return nil, err
	}
	if err := w.updateRuns(ctx, items); err != nil {
		return nil, err
	}
	return w.results(items), nil
}

// prepare encodes the canonical content of every event, checks its hash
// and sorts out what must go to the dead letters before anything is sent.
func (w *writer) prepare(events []store.StoredEvent) []*item {
	backing := make([]item, len(events))
	items := make([]*item, len(events))
	seen := make(map[string]*item, len(events))
	for i := range events {
		it := &backing[i]
		items[i] = it
		se := &events[i]
		it.ev, it.res.EventID, it.hash = se, se.ID, se.Hash
		it.kind, it.id, it.key = eventItem, se.ID, "e:"+se.ID
		doc, err := se.Event.AppendCanonical(make([]byte, 0, 1024))
		if err != nil {
			// Not representable as canonical JSON (NaN, an integer beyond
			// 2^53): keep a readable form so nothing is lost.
			it.doc = fallbackDocument(&se.Event)
			w.toDead(it, store.DeadLettered, "canonical_json", "event cannot be encoded as canonical JSON: "+err.Error())
			continue
		}
		it.doc = doc
		docHash := canonical.HashBytes(doc)
		switch {
		case it.hash == "":
			it.hash = docHash
		case it.hash != docHash:
			// The stored hash must be recomputable from the stored content.
			w.toDead(it, store.DeadLettered, "hash_mismatch",
				fmt.Sprintf("hash mismatch: writer sent %s, content hashes to %s", it.hash, docHash))
		}
		switch {
		case it.kind == deadItem:
		case se.DeadLetterReason != "":
			w.toDead(it, store.DeadLettered, "invalid_event", se.DeadLetterReason)
		case se.ID == "":
			w.toDead(it, store.DeadLettered, "missing_id", "event id ("+auditevent.AttrEventID+") is empty")
		}
		for {
			first, ok := seen[it.key]
			if !ok {
				seen[it.key] = it
				break
			}
			if it.kind == deadItem || first.hash == it.hash {
				it.dupOf = first
				break
			}
			it.existingHash = first.hash
			w.toDead(it, store.Conflict, "conflict", fmt.Sprintf(
				"conflict: event %s appears twice in one write with hashes %s and %s", se.ID, first.hash, it.hash))
		}
	}
	return items
}

// toDead turns it into a dead letter. It keeps its sequence number.
func (w *writer) toDead(it *item, outcome store.Outcome, errType, reason string) {
	it.kind, it.outcome, it.errType, it.reason = deadItem, outcome, errType, reason
	it.id = deadLetterID(w.stream, it.ev.ID, it.doc)
	it.key = "d:" + it.id
	it.line = nil
	if it.seq != 0 {
		w.st.pending[it.key] = it.seq
	}
	if outcome == store.Conflict {
		w.s.logger.Error("integrity alarm: an event id is already stored with other content; the new event is kept as a dead letter",
			zap.String("stream", w.stream), zap.String("event_id", it.ev.ID),
			zap.String("stored_hash", it.existingHash), zap.String("received_hash", it.hash))
	}
}

func (it *item) finish(outcome store.Outcome, seq int64) {
	it.done = true
	it.res.Outcome, it.res.Sequence = outcome, seq
	if it.kind == deadItem && outcome != store.Stored {
		it.res.Reason = it.reason
		if outcome == store.Duplicate {
			it.res.Reason = "already dead-lettered: " + it.reason
		}
	}
	if outcome == store.Conflict || outcome == store.Duplicate {
		it.res.ExistingHash = it.existingHash
	}
}

// precheck looks up every id before numbers are handed out, so that a
// resent event (a Duplicate) takes no number: without it every redelivery
// would leave a hole in the sequence.
func (w *writer) precheck(ctx context.Context, items []*item) error {
	for _, kind := range []itemKind{eventItem, deadItem} { // events first: they may become dead letters
		var batch []*item
		for _, it := range items {
			if it.kind == kind && it.dupOf == nil && !it.done {
				batch = append(batch, it)
			}
		}
		if len(batch) == 0 {
			continue
		}
		found, err := w.s.lookup(ctx, indexOf(w.s, kind), idsOf(batch))
		if err != nil {
			return err
		}
		for i, it := range batch {
			if ex := found[i]; ex.found {
				reserved, ok := w.st.pending[it.key]
				w.judge(it, ex, ok && reserved == ex.seq)
			}
		}
	}
	return nil
}

// judge decides an item whose _id is already taken. ours says the stored
// document carries the number this process reserved for it: an earlier
// attempt stored it and its answer was lost, so it counts as written now.
func (w *writer) judge(it *item, ex existing, ours bool) {
	switch {
	case it.kind == deadItem && ours:
		it.finish(it.outcome, ex.seq)
	case it.kind == deadItem:
		it.finish(store.Duplicate, ex.seq)
	case ex.hash == it.hash && ours:
		it.stored = true
		it.finish(store.Stored, ex.seq)
	case ex.hash == it.hash:
		it.existingHash = ex.hash
		it.finish(store.Duplicate, ex.seq)
		if it.seq != 0 {
			// Only when another writer stored the same event between our
			// lookup and our create (one writer per stream avoids it).
			w.s.logger.Warn("sequence number left unused: the event was stored concurrently by another writer",
				zap.String("stream", w.stream), zap.Int64("sequence", it.seq), zap.String("event_id", it.ev.ID))
		}
	default:
		it.existingHash = ex.hash
		w.toDead(it, store.Conflict, "conflict", fmt.Sprintf(
			"conflict: event %s is stored with hash %s (sequence %d); received hash %s", it.ev.ID, ex.hash, ex.seq, it.hash))
	}
}

func indexOf(s *Store, k itemKind) string {
	if k == eventItem {
		return s.cfg.eventsIndex()
	}
	return s.cfg.deadLettersIndex()
}

func idsOf(items []*item) []string {
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.id
	}
	return ids
}

// results collects the outcomes and releases the numbers of events whose
// outcome is final. Retry outcomes keep theirs for the next attempt.
func (w *writer) results(items []*item) []store.Result {
	out := make([]store.Result, len(items))
	for i, it := range items {
		if f := it.dupOf; f != nil {
			r := store.Result{EventID: it.ev.ID, Outcome: store.Duplicate, Sequence: f.res.Sequence,
				ExistingHash: f.hash, Reason: "the same event came twice in one write"}
			if f.res.Outcome == store.Retry {
				r = store.Result{EventID: it.ev.ID, Outcome: store.Retry, Reason: f.res.Reason}
			}
			out[i] = r
			continue
		}
		out[i] = it.res
		if it.res.Outcome != store.Retry {
			delete(w.st.pending, "e:"+it.ev.ID)
			delete(w.st.pending, it.key)
		}
	}
	return out
}

// fallbackDocument is a best-effort JSON of an event that JCS refuses. JCS
// fails on numbers only, so encoding/json with numbers as text works.
func fallbackDocument(e *auditevent.Event) []byte {
	b, err := json.Marshal(numbersAsText(e.Canonical()))
	if err != nil {
		return fmt.Appendf(nil, "%q", fmt.Sprint(e.Canonical()))
	}
	return b
}

func numbersAsText(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = numbersAsText(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = numbersAsText(x)
		}
		return out
	case float64, float32, int, int64, int32, uint, uint64, uint32:
		return fmt.Sprint(t)
	}
	return v
}

// storedInOrder returns the newly stored items by sequence.
func storedInOrder(items []*item) []*item {
	var out []*item
	for _, it := range items {
		if it.stored {
			out = append(out, it)
		}
	}
	slices.SortFunc(out, func(a, b *item) int { return cmp.Compare(a.seq, b.seq) })
	return out
}
