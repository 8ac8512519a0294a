package esstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/elastic/go-elasticsearch/v8/esapi"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/canonical"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/merkle"
)

// The store's rules live in store.Log; this file gives it Elasticsearch's
// primitives. Elasticsearch has no transactions, so a write is a sequence of
// requests that store.Log orders so that a crash between any two is
// repaired from what is stored: entries (create-only, several bulk requests
// in flight), then run summaries, then the tiles, whose size is the commit
// point (entries beyond it are adopted when the stream is next loaded).
// There are no reads on the happy path: an id is looked up only when the
// window of recent keys may hold it, or when its create answered 409.

// Write implements store.Writer through the store's rules.
func (s *Store) Write(ctx context.Context, stream string, events []store.StoredEvent) ([]store.Result, error) {
	if err := s.ensureReady(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil, errClosed
	}
	return s.log.Write(ctx, stream, events)
}

type backend struct{ s *Store }

func (backend) Atomic() bool    { return false }
func (backend) LookupAll() bool { return false }

func (b backend) Begin(ctx context.Context, stream string) (store.Tx, error) {
	return &esTx{s: b.s, ctx: ctx, stream: stream, ingested: b.s.now().UTC().Format(timeLayout), versions: map[string]runVersion{}}, nil
}

// esTx is one store.Log write: requests sent at once (no transaction).
type esTx struct {
	s        *Store
	ctx      context.Context
	stream   string
	ingested string
	versions map[string]runVersion
}

type runVersion struct{ seqNo, primaryTerm int64 }

func (*esTx) Commit() error { return nil }
func (*esTx) Rollback()     {}

func (t *esTx) Lookup(keys []store.Key) (map[store.Key]store.Ref, error) {
	refs := map[store.Key]store.Ref{}
	var events, dead []store.Key
	for _, k := range keys {
		if k.DeadLetter {
			dead = append(dead, k)
		} else {
			events = append(events, k)
		}
	}
	if len(events) > 0 {
		ids := make([]string, len(events))
		for i, k := range events {
			ids[i] = k.ID
		}
		found, err := t.s.lookup(t.ctx, t.s.cfg.eventsIndex(), ids)
		if err != nil {
			return nil, err
		}
		for i, f := range found {
			if f.found {
				refs[events[i]] = store.Ref{Sequence: f.seq, Hash: f.hash, Document: []byte(f.canonical)}
			}
		}
	}
	if len(dead) > 0 {
		ids := make([]string, len(dead))
		for i, k := range dead {
			ids[i] = deadLetterID(t.stream, k)
		}
		found, err := t.s.lookup(t.ctx, t.s.cfg.deadLettersIndex(), ids)
		if err != nil {
			return nil, err
		}
		for i, f := range found {
			if f.found {
				refs[dead[i]] = store.Ref{Sequence: f.seq, Hash: dead[i].DocHash}
			}
		}
	}
	return refs, nil
}

// Append creates the entries' documents, several bulk requests at a time.
func (t *esTx) Append(entries []*store.Entry) error {
	ops := make([]*bulkOp, len(entries))
	for i, e := range entries {
		line, err := t.encode(e)
		if err != nil {
			return err
		}
		ops[i] = &bulkOp{line: line}
	}
	if err := t.s.bulk(t.ctx, ops); err != nil {
		return err
	}
	defer t.s.noteStored(t.stream, entries)
	for i, e := range entries {
		o := ops[i]
		switch {
		case o.ok():
			e.Status = store.Created
		case o.status == http.StatusConflict:
			e.Status = store.Exists
		case retryableStatus(o.status) || e.Kind != merkle.KindEvent:
			// Not taken in time, or a dead letter (almost no mapping) that
			// was refused: the write fails and is retried whole.
			e.Status, e.StatusReason = store.Failed, fmt.Sprintf("HTTP %d: %s: %s", o.status, o.errType, o.errReason)
		default:
			e.Status = store.Rejected
			e.StatusReason = fmt.Sprintf("rejected by Elasticsearch (HTTP %d): %s: %s", o.status, o.errType, o.errReason)
		}
	}
	return nil
}

// encode is an entry's bulk action and document lines.
func (t *esTx) encode(e *store.Entry) ([]byte, error) {
	index, id := t.s.cfg.eventsIndex(), e.Key.ID
	if e.Kind != merkle.KindEvent {
		index, id = t.s.cfg.deadLettersIndex(), deadLetterID(t.stream, e.Key)
	}
	// The line holds the canonical JSON (escaped) and the indexed fields,
	// which repeat most of it: size once instead of growing.
	dst := make([]byte, 0, 2*len(e.Document)+512)
	dst = append(dst, `{"create":{"_index":`...)
	dst, _ = canonical.AppendJSON(dst, WriteAlias(index))
	dst = append(dst, `,"_id":`...)
	dst, err := canonical.AppendJSON(dst, id)
	if err != nil {
		return nil, fmt.Errorf("esstore: event id %q: %w", id, err)
	}
	dst = append(dst, "}}\n"...)
	if e.Kind == merkle.KindEvent {
		dst, err = encodeEvent(dst, &e.Event.Event, e.Hash, t.stream, e.Sequence, e.Document, t.ingested)
	} else {
		dst, err = encodeDeadLetter(dst, e, t.stream, t.ingested)
	}
	if err != nil {
		return nil, fmt.Errorf("esstore: %w", err)
	}
	return append(dst, '\n'), nil
}

func (t *esTx) Runs(ids []string) (map[string]*store.Run, error) {
	docs, err := t.s.getRuns(t.ctx, ids)
	if err != nil {
		return nil, err
	}
	out := map[string]*store.Run{}
	for i, d := range docs {
		if d.found {
			r := d.run
			out[ids[i]] = &r
			t.versions[ids[i]] = runVersion{d.seqNo, d.primaryTerm}
		}
	}
	return out, nil
}

// PutRuns writes the summaries back only if nobody changed them since Runs
// read them (if_seq_no, if_primary_term; "create" for a new run). A version
// conflict fails the write; its retry reads and folds again, and the
// summaries' Through makes that exact.
func (t *esTx) PutRuns(runs []*store.Run) error {
	index := WriteAlias(t.s.cfg.runsIndex())
	ops := make([]*bulkOp, len(runs))
	for i, r := range runs {
		var line []byte
		if v, ok := t.versions[r.BatchID]; ok {
			line = fmt.Appendf(nil, `{"index":{"_index":%q,"if_seq_no":%d,"if_primary_term":%d,"_id":`, index, v.seqNo, v.primaryTerm)
		} else {
			line = fmt.Appendf(nil, `{"create":{"_index":%q,"_id":`, index)
		}
		line, err := canonical.AppendJSON(line, r.BatchID)
		if err != nil {
			return fmt.Errorf("esstore: batch id %q: %w", r.BatchID, err)
		}
		line = append(line, "}}\n"...)
		doc, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("esstore: run %s: %w", r.BatchID, err)
		}
		ops[i] = &bulkOp{line: append(append(line, doc...), '\n')}
	}
	if err := t.s.bulk(t.ctx, ops); err != nil {
		return err
	}
	for i, o := range ops {
		if !o.ok() {
			return fmt.Errorf("esstore: run summary %s not written (HTTP %d: %s: %s)", runs[i].BatchID, o.status, o.errType, o.errReason)
		}
	}
	return nil
}

// PutTree creates the tile documents (a wider version of a tile is a new
// document; one stored before answers 409 with the same content).
func (t *esTx) PutTree(_ tlog.Tree, tiles []merkle.Tile) error {
	if len(tiles) == 0 {
		return nil
	}
	index := WriteAlias(t.s.cfg.tilesIndex())
	ops := make([]*bulkOp, len(tiles))
	for i, tl := range tiles {
		doc, err := json.Marshal(tileDoc{Stream: t.stream, Level: tl.L, Idx: tl.N, Width: tl.W, Data: tl.Data})
		if err != nil {
			return err
		}
		line := fmt.Appendf(nil, `{"create":{"_index":%q,"_id":%q}}`+"\n", index, tileID(t.stream, tl.Tile))
		ops[i] = &bulkOp{line: append(append(line, doc...), '\n')}
	}
	if err := t.s.bulk(t.ctx, ops); err != nil {
		return err
	}
	for i, o := range ops {
		if !o.ok() && o.status != http.StatusConflict {
			return fmt.Errorf("esstore: tile %d/%d not written (HTTP %d: %s: %s)", tiles[i].L, tiles[i].N, o.status, o.errType, o.errReason)
		}
	}
	return nil
}

type tileDoc struct {
	Stream string `json:"stream"`
	Level  int    `json:"level"`
	Idx    int64  `json:"idx"`
	Width  int    `json:"width"`
	Data   []byte `json:"data"` // base64, the binary type
}

func tileID(stream string, t tlog.Tile) string {
	return fmt.Sprintf("%s/%d/%d/%d", stream, t.L, t.N, t.W)
}

// Head is the tree the stored tiles cover: its size is the widest level-0
// tile's end. Elasticsearch keeps no root with it (no transaction to keep
// it in step); store.Log recomputes it from the tiles.
func (b backend) Head(ctx context.Context, stream string) (store.Head, error) {
	index := b.s.cfg.tilesIndex()
	if err := b.s.refresh(ctx, index); err != nil {
		return store.Head{}, err
	}
	var r struct {
		Hits struct {
			Hits []struct {
				Source tileDoc `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	err := b.s.searchRequest(ctx, index, map[string]any{
		"size": 1, "_source": []string{"idx", "width"},
		"query": map[string]any{"bool": map[string]any{"filter": []any{term("stream", stream), map[string]any{"term": map[string]any{"level": 0}}}}},
		"sort":  []any{map[string]any{"idx": "desc"}, map[string]any{"width": "desc"}},
	}, &r)
	if err != nil {
		return store.Head{}, err
	}
	h := store.Head{Tiles: &tileReader{s: b.s, stream: stream}, Uncommitted: true}
	if len(r.Hits.Hits) > 0 {
		d := r.Hits.Hits[0].Source
		h.Size = d.Idx<<merkle.TileHeight + int64(d.Width)
	}
	return h, nil
}

// tileReader reads a stream's tiles (tlog.TileReader): for each position
// the widest stored version, of which a narrower tile is a prefix.
type tileReader struct {
	s      *Store
	stream string
}

func (*tileReader) Height() int { return merkle.TileHeight }

func (r *tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	ctx := context.Background()
	index := r.s.cfg.tilesIndex()
	should := make([]any, 0, len(tiles))
	for _, t := range tiles {
		should = append(should, map[string]any{"bool": map[string]any{"filter": []any{
			map[string]any{"term": map[string]any{"level": t.L}}, map[string]any{"term": map[string]any{"idx": t.N}},
		}}})
	}
	var res struct {
		Hits struct {
			Hits []struct {
				Source tileDoc `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	err := r.s.searchRequest(ctx, index, map[string]any{
		"size": 10 * len(tiles),
		"query": map[string]any{"bool": map[string]any{
			"filter": []any{term("stream", r.stream)}, "should": should, "minimum_should_match": 1,
		}},
	}, &res)
	if err != nil {
		return nil, err
	}
	widest := map[[2]int64][]byte{}
	for _, h := range res.Hits.Hits {
		k := [2]int64{int64(h.Source.Level), h.Source.Idx}
		if len(h.Source.Data) > len(widest[k]) {
			widest[k] = h.Source.Data
		}
	}
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		d := widest[[2]int64{int64(t.L), t.N}]
		if len(d) < t.W*tlog.HashSize {
			return nil, fmt.Errorf("esstore: tile %d/%d of stream %q holds %d hashes, want %d", t.L, t.N, r.stream, len(d)/tlog.HashSize, t.W)
		}
		out[i] = d[:t.W*tlog.HashSize]
	}
	return out, nil
}

func (*tileReader) SaveTiles([]tlog.Tile, [][]byte) {}

// entryHit is what is read of an entry document: its index, _id and
// _source, with the fields the writer and verification use decoded.
type entryHit struct {
	Index  string          `json:"_index"`
	ID     string          `json:"_id"`
	Raw    json.RawMessage `json:"_source"`
	Sort   []any           `json:"sort"`
	Source struct {
		Event struct {
			ID       string `json:"id"`
			Sequence int64  `json:"sequence"`
			Hash     string `json:"hash"`
			Ingested string `json:"ingested"`
		} `json:"event"`
		Batchaudit struct {
			Stream    string `json:"stream"`
			Canonical string `json:"canonical"`
			EntryKind string `json:"entry_kind"`
			DocHash   string `json:"doc_hash"`
			Document  string `json:"document"`
			Reason    string `json:"reason"`
		} `json:"batchaudit"`
	} `json:"-"`
}

// entries pages through the stream's events and dead letters in sequence
// order (desc: newest first), after the sequence after, up to limit (0:
// all); source nil reads whole documents.
func (s *Store) entries(ctx context.Context, stream string, after int64, desc bool, limit int, source []string, fn func(*entryHit) error) error {
	indices := s.cfg.eventsIndex() + "," + s.cfg.deadLettersIndex()
	if err := s.refresh(ctx, s.cfg.eventsIndex(), s.cfg.deadLettersIndex()); err != nil {
		return err
	}
	order := "asc"
	if desc {
		order = "desc"
	}
	filter := []any{term("batchaudit.stream", stream)}
	if after > 0 {
		filter = append(filter, map[string]any{"range": map[string]any{"event.sequence": map[string]any{"gt": after}}})
	}
	var cursor []any
	seen := 0
	for {
		size := store.PageSize(limit, seen, pageSize)
		req := map[string]any{"size": size, "track_total_hits": false,
			"query": map[string]any{"bool": map[string]any{"filter": filter}},
			"sort":  []any{map[string]any{"event.sequence": order}}}
		if source != nil {
			req["_source"] = source
		}
		if cursor != nil {
			req["search_after"] = cursor
		}
		var r struct {
			Hits struct {
				Hits []entryHit `json:"hits"`
			} `json:"hits"`
		}
		if err := s.searchRequest(ctx, indices, req, &r); err != nil {
			return err
		}
		for i := range r.Hits.Hits {
			h := &r.Hits.Hits[i]
			if err := json.Unmarshal(h.Raw, &h.Source); err != nil {
				return fmt.Errorf("esstore: stream %q: document %s: %w", stream, h.ID, err)
			}
			if err := fn(h); err != nil {
				return err
			}
		}
		seen += len(r.Hits.Hits)
		if len(r.Hits.Hits) < size || (limit > 0 && seen >= limit) {
			return nil
		}
		cursor = r.Hits.Hits[len(r.Hits.Hits)-1].Sort
	}
}

// Tail returns the entries after the tiles' size: what a write stored
// before a crash or failure stopped it from storing its tiles.
func (b backend) Tail(ctx context.Context, stream string, after int64, fn func(*store.Entry) error) error {
	src := []string{"event.id", "event.sequence", "event.hash", "batchaudit.canonical",
		"batchaudit.entry_kind", "batchaudit.doc_hash", "batchaudit.document", "batchaudit.reason"}
	return b.s.entries(ctx, stream, after, false, 0, src, func(h *entryHit) error {
		src := &h.Source
		e := &store.Entry{Sequence: src.Event.Sequence, Status: store.Created}
		if h.Index == b.s.cfg.eventsIndex() {
			doc := []byte(src.Batchaudit.Canonical)
			e.Kind, e.Key, e.Hash, e.EventHash, e.Document = merkle.KindEvent, store.Key{ID: h.ID}, src.Event.Hash, src.Event.Hash, doc
			// A document that cannot be read must not stop the stream
			// from loading: it is adopted as it is, and verify reports it.
			e.Event = &store.StoredEvent{Event: auditevent.Event{ID: src.Event.ID}}
			store.DecodeEvent(e.Event, doc)
		} else {
			doc := []byte(src.Batchaudit.Document)
			dh := src.Batchaudit.DocHash
			if dh == "" {
				sum := sha256.Sum256(doc)
				dh = hex.EncodeToString(sum[:])
			}
			e.Kind = deadKind(src.Batchaudit.EntryKind)
			e.Key = store.Key{DeadLetter: true, ID: src.Event.ID, DocHash: dh}
			e.Hash, e.EventHash, e.Document, e.Reason = dh, src.Event.Hash, doc, src.Batchaudit.Reason
		}
		return fn(e)
	})
}

// RecentKeys reads the keys of the newest n entries, for the window.
func (b backend) RecentKeys(ctx context.Context, stream string, n int, fn func(store.Key)) error {
	if n <= 0 {
		return nil
	}
	src := []string{"event.id", "event.sequence", "batchaudit.doc_hash"}
	return b.s.entries(ctx, stream, 0, true, n, src, func(h *entryHit) error {
		if h.Index == b.s.cfg.eventsIndex() {
			fn(store.Key{ID: h.ID})
		} else if dh := h.Source.Batchaudit.DocHash; dh != "" {
			fn(store.Key{DeadLetter: true, ID: h.Source.Event.ID, DocHash: dh})
		}
		return nil
	})
}

// existing is what a lookup found under an _id.
type existing struct {
	found           bool
	hash, canonical string
	seq             int64
}

// lookup reads event.hash, event.sequence and the canonical document of ids
// in index with a real-time multi-get (no refresh needed). A missing index
// finds nothing. It is called only for ids that may be stored.
func (s *Store) lookup(ctx context.Context, index string, ids []string) ([]existing, error) {
	body, err := json.Marshal(map[string][]string{"ids": ids})
	if err != nil {
		return nil, fmt.Errorf("esstore: lookup: %w", err)
	}
	status, resp, err := s.perform(ctx, "lookup in "+index, func() esapi.Request {
		return esapi.MgetRequest{Index: index, Body: bytes.NewReader(body),
			SourceIncludes: []string{"event.hash", "event.sequence", "batchaudit.canonical"}}
	})
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		if t, _ := errorOf(resp); status == http.StatusNotFound && t == "index_not_found_exception" {
			return make([]existing, len(ids)), nil
		}
		return nil, statusError("lookup in "+index, status, resp)
	}
	var r struct {
		Docs []struct {
			Found  bool `json:"found"`
			Source struct {
				Event struct {
					Hash     string `json:"hash"`
					Sequence int64  `json:"sequence"`
				} `json:"event"`
				Batchaudit struct {
					Canonical string `json:"canonical"`
				} `json:"batchaudit"`
			} `json:"_source"`
			Error *struct {
				Type   string `json:"type"`
				Reason string `json:"reason"`
			} `json:"error"`
		} `json:"docs"`
	}
	if err := json.Unmarshal(resp, &r); err != nil || len(r.Docs) != len(ids) {
		return nil, fmt.Errorf("esstore: lookup in %s: unexpected response: %v: %s", index, err, truncate(string(resp), 300))
	}
	out := make([]existing, len(ids))
	for i, d := range r.Docs {
		if d.Error != nil && d.Error.Type != "index_not_found_exception" {
			return nil, fmt.Errorf("esstore: lookup of %s in %s: %s: %s", ids[i], index, d.Error.Type, d.Error.Reason)
		}
		out[i] = existing{found: d.Found, hash: d.Source.Event.Hash, canonical: d.Source.Batchaudit.Canonical, seq: d.Source.Event.Sequence}
	}
	return out, nil
}
