package esstore

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/elastic/go-elasticsearch/v8/esapi"
)

// LastSequence implements store.Store: the highest sequence of stream over
// events and dead letters, searched after a refresh, so it survives restarts.
func (s *Store) LastSequence(ctx context.Context, stream string) (int64, error) {
	return s.maxSequence(ctx, "last sequence of "+stream, term("batchaudit.stream", stream))
}

// maxSequence returns the highest event.sequence of the events and dead
// letters query selects (0 for none), after a refresh.
func (s *Store) maxSequence(ctx context.Context, what string, query map[string]any) (int64, error) {
	indices := []string{s.cfg.eventsIndex(), s.cfg.deadLettersIndex()}
	if err := s.refresh(ctx, indices...); err != nil {
		return 0, err
	}
	q, _ := json.Marshal(map[string]any{
		"size":  0,
		"query": query,
		"aggs":  map[string]any{"last": map[string]any{"max": map[string]any{"field": "event.sequence"}}},
	})
	status, body, err := s.perform(ctx, what, func() esapi.Request {
		return esapi.SearchRequest{Index: indices, Body: strings.NewReader(string(q)),
			IgnoreUnavailable: ptr(true), AllowNoIndices: ptr(true)}
	})
	if err != nil {
		return 0, err
	}
	if status != http.StatusOK {
		return 0, statusError(what, status, body)
	}
	var r struct {
		Aggregations struct {
			Last struct {
				Value *float64 `json:"value"`
			} `json:"last"`
		} `json:"aggregations"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return 0, fmt.Errorf("esstore: %s: %w", what, err)
	}
	if r.Aggregations.Last.Value == nil {
		return 0, nil
	}
	// Exact up to 2^53, far beyond any stream's length.
	return int64(*r.Aggregations.Last.Value), nil
}
