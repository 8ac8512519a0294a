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
	return store.Collect(ctx, s.EachEvent, q)
}

// EachEvent implements store.Reader.
func (s *Store) EachEvent(ctx context.Context, q store.EventQuery, fn func(*store.StoredEvent) error) error {
	return s.search(ctx, s.cfg.eventsIndex(), eventFilter(q), eventSort, q.Limit, eventSource, func(src json.RawMessage) error {
		se := decodeEvent(src)
		return fn(&se)
	})
}

// eventFilter is the bool filter of an EventQuery, shared by EachEvent and
// the aggregations.
func eventFilter(q store.EventQuery) []any {
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
	for _, c := range [...]struct{ field, val string }{{"user.id", q.ActorID}, {"batchaudit.lineage.id", q.LineageID},
		{"batchaudit.finding.type", q.FindingType}, {"batchaudit.change.type", q.ChangeType}} {
		if c.val != "" {
			filter = append(filter, term(c.field, c.val))
		}
	}
	if r := timeRange("@timestamp", q.From, q.To); r != nil {
		filter = append(filter, r)
	}
	return filter
}

// eventSort is the order of Reader.Events: time, then sequence.
var eventSort = []any{
	map[string]any{"@timestamp": map[string]any{"order": "asc", "missing": "_first"}},
	map[string]any{"event.sequence": "asc"},
	map[string]any{"event.id": "asc"},
}

// eventSource is the part of an event document reads need.
var eventSource = []string{"batchaudit.canonical", "batchaudit.stream", "event.id", "event.sequence", "event.hash", "event.ingested", "@timestamp"}

// decodeEvent rebuilds a stored event from the eventSource fields. A
// document that cannot be read comes back Unreadable (store.DecodeEvent),
// so it never fails a read.
func decodeEvent(src json.RawMessage) store.StoredEvent {
	var d struct {
		Timestamp string `json:"@timestamp"`
		Event     struct {
			ID       string `json:"id"`
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
		// A document of the wrong shape is reported, not fatal.
		return store.StoredEvent{Unreadable: "event document: " + err.Error(), Document: src}
	}
	ingested, _ := time.Parse(time.RFC3339Nano, d.Event.Ingested)
	se := store.StoredEvent{Event: auditevent.Event{ID: d.Event.ID}, Stream: d.Batchaudit.Stream,
		Sequence: d.Event.Sequence, Hash: d.Event.Hash, Ingested: ingested.UTC()}
	store.DecodeEvent(&se, []byte(d.Batchaudit.Canonical))
	if se.Unreadable != "" {
		t, _ := time.Parse(time.RFC3339Nano, d.Timestamp)
		se.Time = t.UTC() // its place in the trail
	}
	return se
}

// Runs implements store.Reader: runs that started in [From, To), by start.
func (s *Store) Runs(ctx context.Context, q store.RunQuery) ([]store.Run, error) {
	return store.Collect(ctx, s.EachRun, q)
}

// EachRun implements store.Reader.
func (s *Store) EachRun(ctx context.Context, q store.RunQuery, fn func(*store.Run) error) error {
	return s.eachRun(ctx, q, store.DecodeRun, fn)
}

func (s *Store) eachRun(ctx context.Context, q store.RunQuery, decode func([]byte, *store.Run) error, fn func(*store.Run) error) error {
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
	if q.ParentBatchID != "" {
		filter = append(filter, term("parent_batch_id", q.ParentBatchID))
	}
	if r := timeRange("start", q.From, q.To); r != nil {
		filter = append(filter, r)
	}
	var r store.Run
	each := func(src json.RawMessage) error {
		if err := decode(src, &r); err != nil {
			return err
		}
		return fn(&r)
	}
	if q.Latest {
		return s.latestRuns(ctx, filter, q.Limit, each)
	}
	sort := []any{map[string]any{"start": "asc"}, map[string]any{"batch_id": "asc"}}
	return s.search(ctx, s.cfg.runsIndex(), filter, sort, q.Limit, nil, each)
}

// latestRuns hands each the latest run of every job the filter selects, by
// job name: a composite aggregation pages through the job names (runs
// without one form the first bucket) and top_hits picks each job's latest.
func (s *Store) latestRuns(ctx context.Context, filter []any, limit int, each func(json.RawMessage) error) error {
	index := s.cfg.runsIndex()
	if err := s.refresh(ctx, index); err != nil {
		return err
	}
	var after any
	seen := 0
	for {
		size := store.PageSize(limit, seen, pageSize)
		composite := map[string]any{"size": size, "sources": []any{
			map[string]any{"job": map[string]any{"terms": map[string]any{"field": "job_name", "missing_bucket": true}}}}}
		if after != nil {
			composite["after"] = after
		}
		req := map[string]any{"size": 0, "track_total_hits": false,
			"query": map[string]any{"bool": map[string]any{"filter": filter}},
			"aggs": map[string]any{"jobs": map[string]any{"composite": composite, "aggs": map[string]any{
				"latest": map[string]any{"top_hits": map[string]any{"size": 1,
					"sort": []any{map[string]any{"start": "desc"}, map[string]any{"batch_id": "desc"}}}}}}}}
		var r struct {
			Aggregations struct {
				Jobs struct {
					AfterKey json.RawMessage `json:"after_key"`
					Buckets  []struct {
						Latest struct {
							Hits struct {
								Hits []struct {
									Source json.RawMessage `json:"_source"`
								} `json:"hits"`
							} `json:"hits"`
						} `json:"latest"`
					} `json:"buckets"`
				} `json:"jobs"`
			} `json:"aggregations"`
		}
		if err := s.searchRequest(ctx, index, req, &r); err != nil {
			return err
		}
		buckets := r.Aggregations.Jobs.Buckets
		for _, b := range buckets {
			for _, h := range b.Latest.Hits.Hits {
				if err := each(h.Source); err != nil {
					return fmt.Errorf("esstore: search %s: document: %w", index, err)
				}
			}
		}
		seen += len(buckets)
		if len(buckets) < size || (limit > 0 && seen >= limit) || len(r.Aggregations.Jobs.AfterKey) == 0 {
			return nil
		}
		after = r.Aggregations.Jobs.AfterKey
	}
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
		out = append(out, store.DeadLetter{EventID: d.Event.ID, Stream: d.Dead.Stream, Sequence: d.Event.Sequence, Kind: deadKind(d.Dead.EntryKind),
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
		size := store.PageSize(limit, seen, pageSize)
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
		var r struct {
			Hits struct {
				Hits []struct {
					Source json.RawMessage `json:"_source"`
					Sort   []any           `json:"sort"`
				} `json:"hits"`
			} `json:"hits"`
		}
		if err := s.searchRequest(ctx, index, req, &r); err != nil {
			return err
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

// searchRequest runs one search and decodes its response into out, numbers
// as json.Number so sort values (longs) stay exact for search_after.
func (s *Store) searchRequest(ctx context.Context, index string, req map[string]any, out any) error {
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
	dec := json.NewDecoder(bytes.NewReader(resp))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("esstore: search %s: %w", index, err)
	}
	return nil
}
