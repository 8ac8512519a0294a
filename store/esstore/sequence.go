package esstore

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/elastic/go-elasticsearch/v8/esapi"
)

// streamState is the sequence bookkeeping of one stream. Writes to a stream
// are serialised by mu (different streams write in parallel), which is what
// makes the counter gapless within this process.
//
// last is the highest number handed out. pending maps an item key ("e:" +
// event id, or "d:" + dead letter id) to the number reserved for it while
// its outcome is not final, so a retried Write (or a retried item) reuses
// the number instead of taking a new one: a number taken by a document that
// Elasticsearch stored although the answer was lost is then recognised as
// ours (same hash, same sequence) and reported Stored.
type streamState struct {
	mu      chan struct{} // a lock that can be abandoned when ctx ends
	loaded  bool
	last    int64
	pending map[string]int64
}

func (s *Store) lockStream(ctx context.Context, stream string) (*streamState, error) {
	if err := s.ensureReady(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errClosed
	}
	st, ok := s.streams[stream]
	if !ok {
		st = &streamState{mu: make(chan struct{}, 1), pending: map[string]int64{}}
		s.streams[stream] = st
	}
	s.mu.Unlock()
	select {
	case st.mu <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("esstore: waiting for another write to stream %q: %w", stream, ctx.Err())
	}
	if !st.loaded {
		last, err := s.LastSequence(ctx, stream)
		if err != nil {
			<-st.mu
			return nil, err
		}
		st.last, st.loaded = last, true
	}
	return st, nil
}

func (st *streamState) unlock() { <-st.mu }

// reserve returns the number reserved for key, or the next free one.
func (st *streamState) reserve(key string) int64 {
	if n, ok := st.pending[key]; ok {
		return n
	}
	st.last++
	st.pending[key] = st.last
	return st.last
}

// LastSequence implements store.Store: the highest sequence of stream over
// events and dead letters, searched after a refresh, so it survives restarts.
func (s *Store) LastSequence(ctx context.Context, stream string) (int64, error) {
	indices := []string{s.cfg.eventsIndex(), s.cfg.deadLettersIndex()}
	if err := s.refresh(ctx, indices...); err != nil {
		return 0, err
	}
	q, _ := json.Marshal(map[string]any{
		"size":  0,
		"query": map[string]any{"term": map[string]any{"batchaudit.stream": stream}},
		"aggs":  map[string]any{"last": map[string]any{"max": map[string]any{"field": "event.sequence"}}},
	})
	status, body, err := s.perform(ctx, "last sequence", func() esapi.Request {
		return esapi.SearchRequest{Index: indices, Body: strings.NewReader(string(q)),
			IgnoreUnavailable: ptr(true), AllowNoIndices: ptr(true)}
	})
	if err != nil {
		return 0, err
	}
	if status != http.StatusOK {
		return 0, statusError("last sequence of "+stream, status, body)
	}
	var r struct {
		Aggregations struct {
			Last struct {
				Value *float64 `json:"value"`
			} `json:"last"`
		} `json:"aggregations"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return 0, fmt.Errorf("esstore: last sequence of %q: %w", stream, err)
	}
	if r.Aggregations.Last.Value == nil {
		return 0, nil
	}
	// Exact up to 2^53, far beyond any stream's length.
	return int64(*r.Aggregations.Last.Value), nil
}
