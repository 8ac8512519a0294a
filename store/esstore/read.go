package esstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/store"
)

// pageSize is how many hits one search returns; longer results are read
// page by page with search_after on the sort values (no scroll state).
const pageSize = 1000

const rangeFormat = "strict_date_optional_time_nanos"

// Events implements store.Reader. Events are rebuilt from their canonical
// content, so each hashes exactly to its stored event.hash.
func (s *Store) Events(ctx context.Context, q store.EventQuery) ([]store.StoredEvent, error) {
	var filter []any
	if q.BatchID != "" {
		filter = append(filter, term("batchaudit.batch.id", q.BatchID))
	}
	if q.RecordID != "" {
		filter = append(filter, term("batchaudit.record.id", q.RecordID))
	}
	if q.Dataset != "" {
		filter = append(filter, map[string]any{"bool": map[string]any{"minimum_should_match": 1, "should": []any{
			term("batchaudit.source.name", q.Dataset), term("batchaudit.source.dataset", q.Dataset),
			term("batchaudit.target.name", q.Dataset), term("batchaudit.target.dataset", q.Dataset),
		}}})
	}
	if len(q.Names) > 0 {
		filter = append(filter, map[string]any{"terms": map[string]any{"event.action": q.Names}})
	}
	if r := timeRange("@timestamp", q.From, q.To); r != nil {
		filter = append(filter, r)
	}
	sort := []any{
		map[string]any{"@timestamp": map[string]any{"order": "asc", "missing": "_first"}},
		map[string]any{"event.sequence": "asc"},
		map[string]any{"event.id": "asc"},
	}
	var out []store.StoredEvent
	err := s.search(ctx, s.cfg.eventsIndex(), filter, sort, q.Limit,
		[]string{"batchaudit.canonical", "batchaudit.stream", "event.sequence", "event.hash", "event.ingested"},
		func(src json.RawMessage) error {
			var d struct {
				Event struct {
					Sequence int64  `json:"sequence"`
					Hash     string `json:"hash"`
					Ingested string `json:"ingested"`
				} `json:"event"`
				Batchaudit struct {
					Stream    string `json:"stream"`
					Canonical string `json:"canonical"`
				} `json:"batchaudit"`
			}
			if err := json.Unmarshal(src, &d); err != nil {
				return err
			}
			e, err := auditevent.ParseCanonical([]byte(d.Batchaudit.Canonical))
			if err != nil {
				return err
			}
			ingested, _ := time.Parse(time.RFC3339Nano, d.Event.Ingested)
			out = append(out, store.StoredEvent{Event: e, Stream: d.Batchaudit.Stream, Sequence: d.Event.Sequence,
				Hash: d.Event.Hash, Ingested: ingested.UTC()})
			return nil
		})
	return out, err
}

// Runs implements store.Reader: runs that started in [From, To), by start.
func (s *Store) Runs(ctx context.Context, q store.RunQuery) ([]store.Run, error) {
	var filter []any
	if q.JobName != "" {
		filter = append(filter, term("job_name", q.JobName))
	}
	if q.Status != "" {
		filter = append(filter, term("status", q.Status))
	}
	if q.ActorID != "" {
		filter = append(filter, term("actor.id", q.ActorID))
	}
	if r := timeRange("start", q.From, q.To); r != nil {
		filter = append(filter, r)
	}
	sort := []any{map[string]any{"start": "asc"}, map[string]any{"batch_id": "asc"}}
	var out []store.Run
	err := s.search(ctx, s.cfg.runsIndex(), filter, sort, q.Limit, nil, func(src json.RawMessage) error {
		var r store.Run
		if err := json.Unmarshal(src, &r); err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// DeadLetters implements store.Reader: dead letters whose time is in
// [from, to), oldest first.
func (s *Store) DeadLetters(ctx context.Context, from, to time.Time, limit int) ([]store.DeadLetter, error) {
	var filter []any
	if r := timeRange("@timestamp", from, to); r != nil {
		filter = append(filter, r)
	}
	sort := []any{map[string]any{"@timestamp": "asc"}, map[string]any{"event.sequence": "asc"}, map[string]any{"event.id": "asc"}}
	var out []store.DeadLetter
	err := s.search(ctx, s.cfg.deadLettersIndex(), filter, sort, limit, nil, func(src json.RawMessage) error {
		var d deadLetterDoc
		if err := json.Unmarshal(src, &d); err != nil {
			return err
		}
		t, _ := time.Parse(time.RFC3339Nano, d.Timestamp)
		out = append(out, store.DeadLetter{EventID: d.Event.ID, Stream: d.Dead.Stream, Sequence: d.Event.Sequence,
			Hash: d.Event.Hash, Reason: d.Dead.Reason, Document: d.Dead.Document, Time: t.UTC()})
		return nil
	})
	return out, err
}

func term(field, value string) map[string]any {
	return map[string]any{"term": map[string]any{field: value}}
}

// timeRange includes from and excludes to; zero ends are open.
func timeRange(field string, from, to time.Time) map[string]any {
	r := map[string]any{"format": rangeFormat}
	if !from.IsZero() {
		r["gte"] = from.UTC().Format(time.RFC3339Nano)
	}
	if !to.IsZero() {
		r["lt"] = to.UTC().Format(time.RFC3339Nano)
	}
	if len(r) == 1 {
		return nil
	}
	return map[string]any{"range": map[string]any{field: r}}
}

// search refreshes index (reads see every completed write), then pages
// through the hits in sort order and hands each _source to each.
func (s *Store) search(ctx context.Context, index string, filter, sort []any, limit int, source []string, each func(json.RawMessage) error) error {
	if err := s.refresh(ctx, index); err != nil {
		return err
	}
	var after []any
	seen := 0
	for {
		size := pageSize
		if limit > 0 && limit-seen < size {
			size = limit - seen
		}
		req := map[string]any{
			"size": size, "sort": sort, "track_total_hits": false,
			"query": map[string]any{"bool": map[string]any{"filter": filter}},
		}
		if source != nil {
			req["_source"] = source
		}
		if after != nil {
			req["search_after"] = after
		}
		body, err := json.Marshal(req)
		if err != nil {
			return fmt.Errorf("esstore: search %s: %w", index, err)
		}
		status, resp, err := s.perform(ctx, "search "+index, func() esapi.Request {
			return esapi.SearchRequest{Index: []string{index}, Body: bytes.NewReader(body),
				IgnoreUnavailable: ptr(true), AllowNoIndices: ptr(true)}
		})
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			return statusError("search "+index, status, resp)
		}
		var r struct {
			Hits struct {
				Hits []struct {
					Source json.RawMessage `json:"_source"`
					Sort   []any           `json:"sort"`
				} `json:"hits"`
			} `json:"hits"`
		}
		dec := json.NewDecoder(bytes.NewReader(resp))
		dec.UseNumber() // sort values are longs: keep them exact for search_after
		if err := dec.Decode(&r); err != nil {
			return fmt.Errorf("esstore: search %s: %w", index, err)
		}
		for _, h := range r.Hits.Hits {
			if err := each(h.Source); err != nil {
				return fmt.Errorf("esstore: search %s: document: %w", index, err)
			}
		}
		seen += len(r.Hits.Hits)
		if len(r.Hits.Hits) < size || (limit > 0 && seen >= limit) {
			return nil
		}
		after = r.Hits.Hits[len(r.Hits.Hits)-1].Sort
	}
}
