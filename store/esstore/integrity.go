package esstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/merkle"
)

var _ store.Integrity = (*Store)(nil)

// Tree implements store.Store.
func (s *Store) Tree(ctx context.Context, stream string) (tlog.Tree, error) {
	if err := s.ensureReady(ctx); err != nil {
		return tlog.Tree{}, err
	}
	return s.log.Tree(ctx, stream)
}

// Reload implements store.Reloader.
func (s *Store) Reload(stream string) { s.log.Reload(stream) }

// Streams implements store.Integrity.
func (s *Store) Streams(ctx context.Context) ([]string, error) {
	indices := s.cfg.eventsIndex() + "," + s.cfg.deadLettersIndex()
	if err := s.refresh(ctx, s.cfg.eventsIndex(), s.cfg.deadLettersIndex()); err != nil {
		return nil, err
	}
	var r struct {
		Aggregations struct {
			Streams struct {
				Buckets []struct {
					Key string `json:"key"`
				} `json:"buckets"`
			} `json:"streams"`
		} `json:"aggregations"`
	}
	err := s.searchRequest(ctx, indices, map[string]any{"size": 0,
		"aggs": map[string]any{"streams": map[string]any{"terms": map[string]any{"field": "batchaudit.stream", "size": 10000, "order": map[string]any{"_key": "asc"}}}}}, &r)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, b := range r.Aggregations.Streams.Buckets {
		out = append(out, b.Key)
	}
	return out, nil
}

// Head implements store.Integrity.
func (s *Store) Head(ctx context.Context, stream string) (store.Head, error) {
	return backend{s}.Head(ctx, stream)
}

// EachEntry implements store.Integrity. An event's whole stored document
// (every field queries and Kibana use) is compared with the document the
// writer derives from its canonical content, sequence, hash and ingest time.
func (s *Store) EachEntry(ctx context.Context, stream string, fn func(*store.StoredEntry) error) error {
	return s.entries(ctx, stream, 0, false, 0, nil, func(h *entryHit) error {
		src := &h.Source
		e := &store.StoredEntry{Stream: stream, Sequence: src.Event.Sequence, EventID: src.Event.ID}
		if h.Index == s.cfg.eventsIndex() {
			e.Kind, e.EventID, e.Hash, e.Document = merkle.KindEvent, h.ID, src.Event.Hash, []byte(src.Batchaudit.Canonical)
			e.Indexed = func(ev *auditevent.Event) []string { return s.checkEventDocument(h, ev, stream) }
		} else {
			e.Kind = deadKind(src.Batchaudit.EntryKind)
			e.Hash, e.Document = src.Batchaudit.DocHash, []byte(src.Batchaudit.Document)
		}
		return fn(e)
	})
}

// checkEventDocument re-derives an event's document and names the fields
// whose stored value differs.
func (s *Store) checkEventDocument(h *entryHit, ev *auditevent.Event, stream string) []string {
	src := &h.Source
	doc := []byte(src.Batchaudit.Canonical)
	want, err := encodeEvent(nil, ev, src.Event.Hash, stream, src.Event.Sequence, doc, src.Event.Ingested)
	if err != nil {
		return []string{err.Error()}
	}
	var got, exp map[string]any
	if err := json.Unmarshal(h.Raw, &got); err != nil {
		return []string{"the stored document does not parse: " + err.Error()}
	}
	if err := json.Unmarshal(want, &exp); err != nil {
		return []string{err.Error()}
	}
	var out []string
	diffFields("", got, exp, &out)
	if h.ID != ev.ID {
		out = append(out, fmt.Sprintf("_id is %q, the document's event id is %q", h.ID, ev.ID))
	}
	return out
}

// diffFields lists the paths where got and want differ.
func diffFields(prefix string, got, want map[string]any, out *[]string) {
	keys := map[string]bool{}
	for k := range got {
		keys[k] = true
	}
	for k := range want {
		keys[k] = true
	}
	for k := range keys {
		g, w := got[k], want[k]
		gm, gok := g.(map[string]any)
		wm, wok := w.(map[string]any)
		if gok && wok {
			diffFields(prefix+k+".", gm, wm, out)
			continue
		}
		if !reflect.DeepEqual(g, w) {
			*out = append(*out, fmt.Sprintf("field %s%s is %s, the document says %s", prefix, k, short(g), short(w)))
		}
	}
}

func short(v any) string {
	b, _ := json.Marshal(v)
	return truncate(string(b), 120)
}

// EachRunSummary implements store.Integrity: a run's document is its
// summary, which is also what run queries search.
func (s *Store) EachRunSummary(ctx context.Context, known func([]byte) *store.Run, fn func(*store.Run, []string) error) error {
	decode := func(summary []byte, r *store.Run) error { return store.DecodeSummary(summary, known, r) }
	return s.eachRun(ctx, store.RunQuery{}, decode, func(r *store.Run) error { return fn(r, nil) })
}

// EntryOf implements store.Integrity.
func (s *Store) EntryOf(ctx context.Context, eventID string) (*store.StoredEntry, error) {
	body, _ := json.Marshal(map[string][]string{"ids": {eventID}})
	status, resp, err := s.perform(ctx, "read event", func() esapi.Request {
		return esapi.MgetRequest{Index: s.cfg.eventsIndex(), Body: bytes.NewReader(body),
			SourceIncludes: []string{"event.hash", "event.sequence", "batchaudit.stream", "batchaudit.canonical"}}
	})
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		if t, _ := errorOf(resp); status == http.StatusNotFound && t == "index_not_found_exception" {
			return nil, nil
		}
		return nil, statusError("read event", status, resp)
	}
	var r struct {
		Docs []entryHit `json:"docs"`
	}
	if err := json.Unmarshal(resp, &r); err != nil || len(r.Docs) != 1 {
		return nil, fmt.Errorf("esstore: read event %s: unexpected response: %v", eventID, err)
	}
	h := &r.Docs[0]
	if len(h.Raw) == 0 {
		return nil, nil
	}
	if err := json.Unmarshal(h.Raw, &h.Source); err != nil {
		return nil, err
	}
	src := &h.Source
	return &store.StoredEntry{Stream: src.Batchaudit.Stream, Sequence: src.Event.Sequence, Kind: merkle.KindEvent,
		EventID: eventID, Hash: src.Event.Hash, Document: []byte(src.Batchaudit.Canonical)}, nil
}

// PutCheckpoint implements store.Integrity: create-only, _id stream/size.
func (s *Store) PutCheckpoint(ctx context.Context, c store.StoredCheckpoint) error {
	if err := s.ensureReady(ctx); err != nil {
		return err
	}
	doc, err := json.Marshal(map[string]any{"stream": c.Stream, "size": c.Size, "root": c.Root, "note": c.Note,
		"created": c.Created.UTC().Format(timeLayout)})
	if err != nil {
		return err
	}
	index := WriteAlias(s.cfg.checkpointsIndex())
	line := fmt.Appendf(nil, `{"create":{"_index":%q,"_id":%q}}`+"\n", index, fmt.Sprintf("%s/%d", c.Stream, c.Size))
	op := &bulkOp{line: append(append(line, doc...), '\n')}
	if err := s.bulk(ctx, []*bulkOp{op}); err != nil {
		return err
	}
	if !op.ok() && op.status != http.StatusConflict {
		return fmt.Errorf("esstore: keep checkpoint %s/%d: HTTP %d: %s: %s", c.Stream, c.Size, op.status, op.errType, op.errReason)
	}
	return nil
}

// Checkpoints implements store.Integrity.
func (s *Store) Checkpoints(ctx context.Context, stream string) ([]store.StoredCheckpoint, error) {
	var out []store.StoredCheckpoint
	err := s.search(ctx, s.cfg.checkpointsIndex(), []any{term("stream", stream)}, []any{map[string]any{"size": "asc"}}, 0, nil,
		func(src json.RawMessage) error {
			var c store.StoredCheckpoint
			if err := json.Unmarshal(src, &c); err != nil {
				return err
			}
			out = append(out, c)
			return nil
		})
	return out, err
}

// LastSequenceBefore implements store.Integrity: one max aggregation over
// the events and dead letters (gaps excluded) of the stream before t.
func (s *Store) LastSequenceBefore(ctx context.Context, stream string, t time.Time) (int64, error) {
	return s.maxSequence(ctx, "last sequence of "+stream+" before "+t.UTC().Format(time.RFC3339Nano),
		map[string]any{"bool": map[string]any{
			"filter":   []any{term("batchaudit.stream", stream), timeRange("@timestamp", time.Time{}, t)},
			"must_not": []any{term("batchaudit.entry_kind", string(merkle.KindGap))}}})
}
