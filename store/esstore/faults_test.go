package esstore

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumererror"

	"github.com/batchaudit/batchaudit/internal/estest"
	"github.com/batchaudit/batchaudit/store"
)

// faultProxy is a FAULT-INJECTION reverse proxy in front of the REAL test
// node: every request goes to the node unless inject answers it first, and
// rewrite may change the node's answer to an event bulk request (e.g. to
// lose it). Only these tests use it; everything else talks to the node.
type faultProxy struct {
	srv *httptest.Server
	mu  sync.Mutex
	// eventBulks counts bulk requests that carry events (not run updates).
	eventBulks int
	injected   []int
	// inject runs before forwarding an event bulk request (n counts from
	// 1); a non-zero status is answered instead of forwarding.
	inject func(n int, body []byte) int
	// forwardThen, if it returns non-zero, forwards the request but answers
	// that status instead of the node's answer (the answer is lost).
	forwardThen func(n int) int
	// rewrite changes the node's answer to event bulk request n.
	rewrite func(n int, resp []byte) []byte
	// all answers every request with this status when non-zero.
	all int
	// dropNth, when non-zero, removes the dropNth item of every event bulk
	// request before forwarding it and answers 503 for it: an item the node
	// never stored.
	dropNth int
}

func newFaultProxy(t *testing.T) *faultProxy {
	p := &faultProxy{}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *faultProxy) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	plain := raw
	if r.Header.Get("Content-Encoding") == "gzip" {
		if zr, err := gzip.NewReader(bytes.NewReader(raw)); err == nil {
			plain, _ = io.ReadAll(zr)
		}
	}
	p.mu.Lock()
	all := p.all
	n := 0
	isEventBulk := strings.HasSuffix(r.URL.Path, "/_bulk") && bytes.Contains(plain, []byte(`-events-write"`))
	if isEventBulk {
		p.eventBulks++
		n = p.eventBulks
	}
	status := all
	if status == 0 && isEventBulk && p.inject != nil {
		status = p.inject(n, plain)
	}
	lose := 0
	if isEventBulk && p.forwardThen != nil {
		lose = p.forwardThen(n)
	}
	rewrite := p.rewrite
	drop := 0
	if isEventBulk {
		drop = p.dropNth
	}
	if status != 0 {
		p.injected = append(p.injected, status)
	}
	p.mu.Unlock()
	forward := raw
	if drop > 0 {
		lines := bytes.SplitAfter(plain, []byte("\n"))
		if 2*drop <= len(lines) {
			kept := append(append([][]byte{}, lines[:2*(drop-1)]...), lines[2*drop:]...)
			forward = bytes.Join(kept, nil)
		} else {
			drop = 0
		}
	}
	if status != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":{"type":"injected","reason":"injected HTTP %d"},"status":%d}`, status, status)
		return
	}

	req, _ := http.NewRequestWithContext(r.Context(), r.Method, estest.URL()+r.URL.RequestURI(), bytes.NewReader(forward))
	req.Header = r.Header.Clone()
	if drop > 0 {
		req.Header.Del("Content-Encoding")
		req.ContentLength = int64(len(forward))
	}
	req.Header.Del("Accept-Encoding") // let Go decompress, so answers can be rewritten
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if lose != 0 {
		w.WriteHeader(lose)
		return
	}
	if drop > 0 {
		var br map[string]any
		if json.Unmarshal(body, &br) == nil {
			items, _ := br["items"].([]any)
			lost := map[string]any{"create": map[string]any{"status": 503,
				"error": map[string]any{"type": "unavailable_shards_exception", "reason": "injected: not stored"}}}
			items = append(items[:drop-1], append([]any{lost}, items[drop-1:]...)...)
			br["items"], br["errors"] = items, true
			body, _ = json.Marshal(br)
		}
	}
	if isEventBulk && rewrite != nil {
		body = rewrite(n, body)
	}
	for k, v := range res.Header {
		if k != "Content-Length" {
			w.Header()[k] = v
		}
	}
	w.WriteHeader(res.StatusCode)
	_, _ = w.Write(body)
}

func (p *faultProxy) injectedStatuses() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int(nil), p.injected...)
}

// proxied opens a store that talks to the node through the proxy.
func proxied(t *testing.T, mutate ...func(*Config)) (*Store, *faultProxy, Config) {
	p := newFaultProxy(t)
	cfg := testConfig(testPrefix(t))
	cfg.Endpoints = []string{p.srv.URL}
	for _, m := range mutate {
		m(&cfg)
	}
	return openWith(t, cfg), p, cfg
}

// direct reopens the same indices without the proxy, to check what the
// node really holds.
func direct(t *testing.T, cfg Config) *Store {
	cfg.Endpoints = []string{estest.URL()}
	return openWith(t, cfg)
}

func requireStoredOnce(t *testing.T, s *Store, in []store.StoredEvent) {
	t.Helper()
	out, err := s.Events(ctx(t), store.EventQuery{})
	require.NoError(t, err)
	require.Len(t, out, len(in))
	for i := range in {
		require.Equal(t, in[i].ID, out[i].ID)
		require.Equal(t, in[i].Hash, out[i].Hash)
	}
}

func TestRetriesOnInjected429And5xx(t *testing.T) {
	s, p, cfg := proxied(t)
	p.inject = func(n int, _ []byte) int {
		return map[int]int{1: http.StatusTooManyRequests, 2: http.StatusInternalServerError, 3: http.StatusServiceUnavailable}[n]
	}
	in := simpleEvents("b-429", 50)
	res, err := s.Write(ctx(t), "main", in)
	require.NoError(t, err)
	require.Equal(t, map[store.Outcome]int{store.Stored: 50}, outcomes(res))
	assert.Equal(t, []int{429, 500, 503}, p.injectedStatuses())
	d := direct(t, cfg)
	requireStoredOnce(t, d, in)
	requireGapless(t, d, "main", 50)
}

func TestItemRetryWhenStoredButAnswered429(t *testing.T) {
	// The node stores every item, but the proxy turns two item answers of
	// the first bulk into 429: they are resent, answered 409, recognised as
	// ours (same hash, same sequence) and reported Stored, exactly once.
	s, p, cfg := proxied(t)
	p.rewrite = func(n int, resp []byte) []byte {
		if n != 1 {
			return resp
		}
		var br map[string]any
		require.NoError(t, json.Unmarshal(resp, &br))
		items := br["items"].([]any)
		for _, i := range []int{0, 3} {
			items[i] = map[string]any{"create": map[string]any{"status": 429,
				"error": map[string]any{"type": "es_rejected_execution_exception", "reason": "injected"}}}
		}
		b, _ := json.Marshal(br)
		return b
	}
	in := simpleEvents("b-item429", 10)
	res, err := s.Write(ctx(t), "main", in)
	require.NoError(t, err)
	require.Equal(t, map[store.Outcome]int{store.Stored: 10}, outcomes(res))
	for i, r := range res {
		assert.Equal(t, int64(i+1), r.Sequence)
	}
	d := direct(t, cfg)
	requireStoredOnce(t, d, in)
	requireGapless(t, d, "main", 10)
	runs, err := d.Runs(ctx(t), store.RunQuery{})
	require.NoError(t, err)
	require.Len(t, runs, 1)
	assert.Equal(t, int64(10), runs[0].Events, "each event folded into the run once")
}

func TestItemRetryGivesUpWithRetryOutcome(t *testing.T) {
	// Item 3 is answered 503 every time (the node stores it all the same):
	// with max_attempts 2 the Write fails (no outcome is known for any
	// event). Its retry finds all three stored with their numbers, adopted
	// when the stream was reloaded: Duplicates, folded into the run once.
	s, p, cfg := proxied(t, func(c *Config) { c.Retry.MaxAttempts = 2 })
	p.rewrite = func(_ int, resp []byte) []byte {
		var br map[string]any
		require.NoError(t, json.Unmarshal(resp, &br))
		items := br["items"].([]any)
		last := len(items) - 1
		items[last] = map[string]any{"create": map[string]any{"status": 503,
			"error": map[string]any{"type": "unavailable_shards_exception", "reason": "injected"}}}
		b, _ := json.Marshal(br)
		return b
	}
	in := simpleEvents("b-giveup", 3)
	_, err := s.Write(ctx(t), "main", in)
	require.ErrorContains(t, err, "unavailable_shards_exception")
	assert.False(t, consumererror.IsPermanent(err))
	p.mu.Lock()
	p.rewrite = nil
	p.mu.Unlock()
	res, err := s.Write(ctx(t), "main", in)
	require.NoError(t, err)
	for i, r := range res {
		assert.Equal(t, store.Duplicate, r.Outcome)
		assert.Equal(t, int64(i+1), r.Sequence)
	}
	d := direct(t, cfg)
	requireGapless(t, d, "main", 3)
	runs, err := d.Runs(ctx(t), store.RunQuery{})
	require.NoError(t, err)
	assert.Equal(t, int64(3), runs[0].Events)
}

func TestRequestTooLargeIsSplit(t *testing.T) {
	const limit = 16 << 10
	s, p, cfg := proxied(t, func(c *Config) { c.Compression = false })
	p.inject = func(_ int, body []byte) int {
		if len(body) > limit {
			return http.StatusRequestEntityTooLarge
		}
		return 0
	}
	in := simpleEvents("b-413", 200)
	res, err := s.Write(ctx(t), "main", in)
	require.NoError(t, err)
	require.Equal(t, map[store.Outcome]int{store.Stored: 200}, outcomes(res))
	assert.NotEmpty(t, p.injectedStatuses(), "the proxy refused the large requests")
	d := direct(t, cfg)
	requireStoredOnce(t, d, in)
	requireGapless(t, d, "main", 200)
}

func TestNodeUnreachableIsRetryable(t *testing.T) {
	s, p, cfg := proxied(t)
	p.srv.Close() // from now on, connections are refused
	in := simpleEvents("b-down", 5)
	c, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	res, err := s.Write(c, "main", in)
	require.Error(t, err)
	assert.False(t, consumererror.IsPermanent(err), "an unreachable node is worth retrying: %v", err)
	assert.Nil(t, res, "no outcome, and nothing reported Stored")

	d := direct(t, cfg)
	out, err := d.Events(ctx(t), store.EventQuery{})
	require.NoError(t, err)
	assert.Empty(t, out)
	res, err = d.Write(ctx(t), "main", in)
	require.NoError(t, err)
	assert.Equal(t, int64(1), res[0].Sequence)
	requireGapless(t, d, "main", 5)
}

func TestUnauthorizedIsPermanent(t *testing.T) {
	s, p, _ := proxied(t)
	p.inject = func(int, []byte) int { return http.StatusUnauthorized }
	res, err := s.Write(ctx(t), "main", simpleEvents("b-401", 2))
	require.Error(t, err)
	assert.True(t, consumererror.IsPermanent(err), "%v", err)
	assert.Contains(t, err.Error(), "401")
	assert.Nil(t, res)

	p.mu.Lock()
	p.all = http.StatusForbidden
	p.mu.Unlock()
	cfg := testConfig("ba-never-created")
	cfg.Endpoints = []string{p.srv.URL}
	_, err = New(ctx(t), cfg, nil)
	require.Error(t, err)
	assert.True(t, consumererror.IsPermanent(err), "%v", err)
}

func TestSequencesGaplessAcrossRetriedWrite(t *testing.T) {
	// The node stores the first bulk but its answer is lost (502). With
	// max_attempts 1 the Write fails; the stream is reloaded before the next
	// write, adopting the stored events (numbers 1..6, folded into the run
	// once), and the retried Write finds them: Duplicates of themselves.
	s, p, cfg := proxied(t, func(c *Config) { c.Retry.MaxAttempts = 1 })
	p.forwardThen = func(n int) int {
		if n == 1 {
			return http.StatusBadGateway
		}
		return 0
	}
	in := simpleEvents("b-lost", 6)
	res, err := s.Write(ctx(t), "main", in)
	require.Error(t, err)
	assert.False(t, consumererror.IsPermanent(err))
	assert.Nil(t, res)

	res, err = s.Write(ctx(t), "main", in)
	require.NoError(t, err)
	for i, r := range res {
		assert.Equal(t, store.Duplicate, r.Outcome)
		assert.Equal(t, int64(i+1), r.Sequence)
	}
	res, err = s.Write(ctx(t), "main", simpleEvents("b-lost-2", 2))
	require.NoError(t, err)
	assert.Equal(t, int64(8), res[1].Sequence)

	d := direct(t, cfg)
	requireGapless(t, d, "main", 8)
	runs, err := d.Runs(ctx(t), store.RunQuery{JobName: "bench"})
	require.NoError(t, err)
	require.Len(t, runs, 2)
	assert.Equal(t, int64(6), runs[0].Events)
}

// The collector must start while Elasticsearch is down (its queue then holds
// the events): New succeeds, writes fail retryably until the node answers,
// and the templates are installed on the first write that reaches it.
func TestNewWhileNodeDown(t *testing.T) {
	cfg := testConfig(testPrefix(t))
	real := cfg.Endpoints
	cfg.Endpoints = []string{"http://127.0.0.1:1"} // nothing listens there
	s, err := New(ctx(t), cfg, nil)
	require.NoError(t, err)
	_, err = s.Write(ctx(t), "main", simpleEvents("b-late", 2))
	require.Error(t, err)
	assert.False(t, consumererror.IsPermanent(err), "%v", err)
	require.NoError(t, s.Close())

	cfg.Endpoints = real
	s2, err := New(ctx(t), cfg, nil)
	require.NoError(t, err)
	defer s2.Close()
	res, err := s2.Write(ctx(t), "main", simpleEvents("b-late", 2))
	require.NoError(t, err)
	assert.Equal(t, store.Stored, res[0].Outcome)
}
