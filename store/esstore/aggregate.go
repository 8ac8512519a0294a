package esstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/merkle"
)

var _ store.Aggregator = (*Store)(nil)

// groupFields maps a group key to its keyword field; ByDay is a
// date_histogram on @timestamp instead.
var groupFields = map[store.GroupKey]string{
	store.ByName:            "event.action",
	store.ByBatch:           "batchaudit.batch.id",
	store.ByStream:          "batchaudit.stream",
	store.BySource:          "batchaudit.source.dataset",
	store.ByTarget:          "batchaudit.target.dataset",
	store.ByChangeType:      "batchaudit.change.type",
	store.ByFindingType:     "batchaudit.finding.type",
	store.ByFindingSeverity: "batchaudit.finding.severity",
	store.ByTransform:       "batchaudit.transform.name",
	store.ByErrorType:       "error.type",
}

// compositePage is how many buckets one composite aggregation request
// returns; more are paged with after_key. Each page runs the query again,
// so pages are large (below search.max_buckets, 65536 by default).
const compositePage = 50000

// CountEvents implements store.Aggregator with a composite aggregation,
// paged, so any number of groups comes back without a bucket limit.
func (s *Store) CountEvents(ctx context.Context, q store.EventQuery, by ...store.GroupKey) ([]store.Bucket, error) {
	sources := make([]any, len(by))
	for i, k := range by {
		name := fmt.Sprintf("k%d", i)
		if k == store.ByDay {
			sources[i] = map[string]any{name: map[string]any{"date_histogram": map[string]any{
				"field": "@timestamp", "calendar_interval": "1d", "format": "yyyy-MM-dd", "time_zone": "UTC", "missing_bucket": true}}}
			continue
		}
		f, ok := groupFields[k]
		if !ok {
			return nil, fmt.Errorf("esstore: count events: unknown group key %q", k)
		}
		sources[i] = map[string]any{name: map[string]any{"terms": map[string]any{"field": f, "missing_bucket": true}}}
	}
	index := s.cfg.eventsIndex()
	filter := eventFilter(q)
	if len(by) == 0 {
		n, err := s.count(ctx, index, filter)
		if err != nil {
			return nil, err
		}
		return []store.Bucket{{Keys: []string{}, Count: n}}, nil
	}
	var out []store.Bucket
	err := s.composite(ctx, index, filter, sources, nil, func(key map[string]any, count int64, _ json.RawMessage) {
		b := store.Bucket{Keys: make([]string, len(by)), Count: count}
		for i := range by {
			b.Keys[i] = keyString(key[fmt.Sprintf("k%d", i)])
		}
		out = append(out, b)
	})
	if err != nil {
		return nil, err
	}
	store.SortBuckets(out)
	return out, nil
}

// CountDeadLetters implements store.Aggregator.
func (s *Store) CountDeadLetters(ctx context.Context, from, to time.Time) ([]store.DeadLetterCount, error) {
	var filter []any
	if r := timeRange("@timestamp", from, to); r != nil {
		filter = append(filter, r)
	}
	sources := []any{map[string]any{"stream": map[string]any{"terms": map[string]any{"field": "batchaudit.stream"}}}}
	sub := map[string]any{"conflicts": map[string]any{"filter": term("batchaudit.conflict", "true")},
		"gaps": map[string]any{"filter": term("batchaudit.entry_kind", string(merkle.KindGap))}}
	var out []store.DeadLetterCount
	err := s.composite(ctx, s.cfg.deadLettersIndex(), filter, sources, sub, func(key map[string]any, count int64, aggs json.RawMessage) {
		var c struct {
			Conflicts, Gaps struct {
				DocCount int64 `json:"doc_count"`
			}
		}
		_ = json.Unmarshal(aggs, &c)
		out = append(out, store.DeadLetterCount{Stream: keyString(key["stream"]), DeadLetters: count - c.Gaps.DocCount,
			Conflicts: c.Conflicts.DocCount, Gaps: c.Gaps.DocCount})
	})
	return out, err
}

// EventsWithValue implements store.Aggregator: a term query on the
// flattened record data matches the value in any leaf; the exact
// top-level check follows.
func (s *Store) EventsWithValue(ctx context.Context, q store.EventQuery, value string) ([]store.StoredEvent, error) {
	filter := append(eventFilter(q), term("batchaudit.record.data", value))
	var out []store.StoredEvent
	err := s.search(ctx, s.cfg.eventsIndex(), filter, eventSort, 0, eventSource, func(src json.RawMessage) error {
		se := decodeEvent(src)
		if store.HasValue(&se.Event, value) && (q.Limit == 0 || len(out) < q.Limit) {
			out = append(out, se)
		}
		return nil
	})
	return out, err
}

// count returns the number of documents filter selects.
func (s *Store) count(ctx context.Context, index string, filter []any) (int64, error) {
	if err := s.refresh(ctx, index); err != nil {
		return 0, err
	}
	var r struct {
		Hits struct {
			Total struct {
				Value int64 `json:"value"`
			} `json:"total"`
		} `json:"hits"`
	}
	err := s.searchRequest(ctx, index, map[string]any{"size": 0, "track_total_hits": true,
		"query": map[string]any{"bool": map[string]any{"filter": filter}}}, &r)
	return r.Hits.Total.Value, err
}

// composite runs a composite aggregation page by page and hands every
// bucket (its key, doc_count and the raw bucket for sub-aggregations) to
// each.
func (s *Store) composite(ctx context.Context, index string, filter, sources []any, sub map[string]any,
	each func(key map[string]any, count int64, bucket json.RawMessage)) error {
	if err := s.refresh(ctx, index); err != nil {
		return err
	}
	var after map[string]any
	for {
		comp := map[string]any{"size": compositePage, "sources": sources}
		if after != nil {
			comp["after"] = after
		}
		agg := map[string]any{"composite": comp}
		if sub != nil {
			agg["aggs"] = sub
		}
		req := map[string]any{"size": 0, "track_total_hits": false,
			"query": map[string]any{"bool": map[string]any{"filter": filter}},
			"aggs":  map[string]any{"g": agg}}
		var r struct {
			Aggregations struct {
				G struct {
					AfterKey map[string]any    `json:"after_key"`
					Buckets  []json.RawMessage `json:"buckets"`
				} `json:"g"`
			} `json:"aggregations"`
		}
		if err := s.searchRequest(ctx, index, req, &r); err != nil {
			return err
		}
		for _, raw := range r.Aggregations.G.Buckets {
			var b struct {
				Key      map[string]any `json:"key"`
				DocCount int64          `json:"doc_count"`
			}
			if err := json.Unmarshal(raw, &b); err != nil {
				return fmt.Errorf("esstore: aggregate %s: %w", index, err)
			}
			each(b.Key, b.DocCount, raw)
		}
		if len(r.Aggregations.G.Buckets) < compositePage || r.Aggregations.G.AfterKey == nil {
			return nil
		}
		after = r.Aggregations.G.AfterKey
	}
}

// keyString turns a composite key value into the bucket key: missing is "".
func keyString(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	case json.Number:
		return t.String()
	}
	return fmt.Sprint(v)
}
