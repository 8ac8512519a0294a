package esstore

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/batchaudit/batchaudit/canonical"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/merkle"
)

const benchBatch = 1000

func reportEventsPerSec(b *testing.B, events int) {
	b.ReportMetric(float64(events*b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkEncode measures what a write does per event before the network:
// the store's rules (canonical JSON, hash check, numbering) are measured in
// package store; here the ECS document and bulk lines.
func BenchmarkEncode(b *testing.B) {
	events := simpleEvents("bench", benchBatch)
	s := &Store{cfg: NewDefaultConfig(), logger: zap.NewNop()}
	entries := make([]*store.Entry, len(events))
	for i := range events {
		doc, err := events[i].AppendCanonical(nil)
		if err != nil {
			b.Fatal(err)
		}
		h := canonical.HashBytes(doc)
		entries[i] = &store.Entry{Kind: merkle.KindEvent, Sequence: int64(i + 1), Key: store.Key{ID: events[i].ID},
			Event: &events[i], Hash: h, EventHash: h, Document: doc}
	}
	b.ReportAllocs()
	bytesOut := 0
	for b.Loop() {
		tx := &esTx{s: s, stream: "main", ingested: time.Now().UTC().Format(timeLayout)}
		bytesOut = 0
		for _, e := range entries {
			line, err := tx.encode(e)
			if err != nil {
				b.Fatal(err)
			}
			bytesOut += len(line)
		}
	}
	reportEventsPerSec(b, benchBatch)
	b.ReportMetric(float64(bytesOut)/benchBatch, "bytes/event")
}

// bulkStub is an in-process stand-in for Elasticsearch (benchmarks only):
// every create succeeds, every lookup finds nothing.
func bulkStub(b *testing.B) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Elastic-Product", "Elasticsearch")
		w.Header().Set("Content-Type", "application/json")
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		switch p := r.URL.Path; {
		case strings.HasSuffix(p, "/_bulk"):
			lines := 0
			sc := bufio.NewScanner(body)
			sc.Buffer(make([]byte, 1<<20), 64<<20)
			for sc.Scan() {
				lines++
			}
			var out bytes.Buffer
			out.WriteString(`{"errors":false,"items":[`)
			for i := 0; i < lines/2; i++ {
				if i > 0 {
					out.WriteByte(',')
				}
				out.WriteString(`{"create":{"status":201}}`)
			}
			out.WriteString(`]}`)
			_, _ = w.Write(out.Bytes())
		case strings.HasSuffix(p, "/_mget"):
			var req struct {
				IDs []string `json:"ids"`
			}
			_ = json.NewDecoder(body).Decode(&req)
			var out bytes.Buffer
			out.WriteString(`{"docs":[`)
			for i := range req.IDs {
				if i > 0 {
					out.WriteByte(',')
				}
				fmt.Fprintf(&out, `{"_id":%q,"found":false}`, req.IDs[i])
			}
			out.WriteString(`]}`)
			_, _ = w.Write(out.Bytes())
		case strings.HasSuffix(p, "/_search"):
			_, _ = io.WriteString(w, `{"hits":{"hits":[]},"aggregations":{"last":{"value":null}}}`)
		default: // _cluster/health, _refresh
			_, _ = io.WriteString(w, `{"status":"green"}`)
		}
	}))
	b.Cleanup(srv.Close)
	return srv
}

// BenchmarkWriteStub is a whole Write (lookup, bulk, run update) against the
// in-process stub: encoding, HTTP and response handling, no Elasticsearch.
func BenchmarkWriteStub(b *testing.B) {
	for _, gz := range []bool{false, true} {
		b.Run(fmt.Sprintf("gzip=%v", gz), func(b *testing.B) {
			cfg := NewDefaultConfig()
			cfg.Endpoints = []string{bulkStub(b).URL}
			cfg.InstallTemplates = false
			cfg.Compression = gz
			s, err := New(b.Context(), cfg, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			events := simpleEvents("bench", benchBatch)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Write(b.Context(), "main", events); err != nil {
					b.Fatal(err)
				}
			}
			reportEventsPerSec(b, benchBatch)
		})
	}
}

// BenchmarkWriteRealNode writes new events in batches of 1000 into the real
// test node (lookups, bulk create, run update; no refresh).
func BenchmarkWriteRealNode(b *testing.B) {
	s, _ := openStore(b)
	batch := 0
	b.ReportAllocs()
	for b.Loop() {
		events := simpleEvents(fmt.Sprintf("bench-%d", batch), benchBatch)
		batch++
		res, err := s.Write(b.Context(), "main", events)
		if err != nil {
			b.Fatal(err)
		}
		if res[len(res)-1].Outcome != store.Stored {
			b.Fatalf("not stored: %+v", res[len(res)-1])
		}
	}
	reportEventsPerSec(b, benchBatch)
}

// BenchmarkReadAfterWrite measures the cost of the read-side refresh: one
// small write followed by a read that must see it.
func BenchmarkReadAfterWrite(b *testing.B) {
	s, _ := openStore(b)
	i := 0
	for b.Loop() {
		evs := simpleEvents(fmt.Sprintf("raw-%d", i), 1)
		i++
		if _, err := s.Write(b.Context(), "main", evs); err != nil {
			b.Fatal(err)
		}
		out, err := s.Events(b.Context(), store.EventQuery{BatchID: evs[0].BatchID})
		if err != nil || len(out) != 1 {
			b.Fatalf("read after write: %v %d", err, len(out))
		}
	}
}

// BenchmarkCanonicalOnly is the model's own share of BenchmarkEncode: the
// canonical JSON of each event (auditevent.Canonical + canonical.Marshal),
// which every backend computes to check and store the hash.
func BenchmarkCanonicalOnly(b *testing.B) {
	events := simpleEvents("bench", benchBatch)
	b.ReportAllocs()
	for b.Loop() {
		for i := range events {
			if _, err := canonical.Marshal(events[i].Event.Canonical()); err != nil {
				b.Fatal(err)
			}
		}
	}
	reportEventsPerSec(b, benchBatch)
}
