package esstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/elastic/go-elasticsearch/v8/esapi"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.uber.org/zap"

	"github.com/batchaudit/batchaudit/canonical"
	"github.com/batchaudit/batchaudit/store"
)

// send writes the items with bulk "create" requests until each has a final
// outcome. Items answered 429 or 5xx are resent with backoff; an item the
// mapping rejects becomes a dead letter in the next round (at once, without
// waiting); a 409 is judged by looking the stored document up. When the
// retries are used up, the items left get the Retry outcome. An error means
// a request-level failure that retries could not fix, or a permanent one.
func (w *writer) send(ctx context.Context, items []*item) error {
	for retries := 1; ; {
		todo := pendingItems(items)
		if len(todo) == 0 {
			return nil
		}
		again, err := w.round(ctx, todo)
		if err != nil {
			return err
		}
		if !again {
			continue
		}
		if werr := w.s.wait(ctx, retries); werr != nil {
			left := pendingItems(items)
			w.s.logger.Warn("Elasticsearch did not take some events; they are reported for retry",
				zap.String("stream", w.stream), zap.Int("events", len(left)), zap.String("last_reason", left[0].retryReason), zap.Error(werr))
			for _, it := range left {
				it.finish(store.Retry, 0)
				it.res.Reason = fmt.Sprintf("%s (not retried further: %v)", it.retryReason, werr)
			}
			return nil
		}
		retries++
	}
}

func pendingItems(items []*item) []*item {
	var out []*item
	for _, it := range items {
		if !it.done && it.dupOf == nil {
			out = append(out, it)
		}
	}
	return out
}

// round sends every item once, in requests of at most max_bulk_bytes. It
// reports whether some items must be retried after a backoff.
func (w *writer) round(ctx context.Context, todo []*item) (again bool, err error) {
	var taken []*item
	chunks, err := w.chunks(todo)
	if err != nil {
		return false, err
	}
	var body bytes.Buffer
	for len(chunks) > 0 {
		chunk := chunks[0]
		chunks = chunks[1:]
		body.Reset()
		for _, it := range chunk {
			body.Write(it.line)
		}
		status, resp, err := w.s.perform(ctx, "bulk", func() esapi.Request {
			return esapi.BulkRequest{Body: bytes.NewReader(body.Bytes()), IncludeSourceOnError: ptr(false),
				FilterPath: []string{"errors", "items.*.status", "items.*.error.type", "items.*.error.reason"}}
		})
		if err != nil {
			return false, err
		}
		switch {
		case status == http.StatusRequestEntityTooLarge || status == http.StatusBadRequest:
			// The request as a whole is refused: halve it until the
			// offending item is alone, then dead-letter that item.
			if len(chunk) > 1 {
				h := len(chunk) / 2
				chunks = append([][]*item{chunk[:h], chunk[h:]}, chunks...)
				continue
			}
			t, r := errorOf(resp)
			if t == "" {
				t, r = http.StatusText(status), truncate(string(resp), 300)
			}
			w.rejected(chunk[0], status, t, r)
			continue
		case status == http.StatusNotFound:
			// No _bulk endpoint: the URL does not point at Elasticsearch.
			return false, consumererror.NewPermanent(statusError("bulk (is the endpoint an Elasticsearch node?)", status, resp))
		case status != http.StatusOK:
			return false, statusError("bulk", status, resp)
		}
		var br bulkResponse
		if err := json.Unmarshal(resp, &br); err != nil || len(br.Items) != len(chunk) {
			return false, fmt.Errorf("esstore: bulk: unexpected response (%d items for %d sent): %v: %s",
				len(br.Items), len(chunk), err, truncate(string(resp), 300))
		}
		for i, it := range chunk {
			var r bulkItemResult
			for _, v := range br.Items[i] {
				r = v
			}
			switch {
			case r.Status >= 200 && r.Status < 300:
				if it.kind == eventItem {
					it.stored = true
					it.finish(store.Stored, it.seq)
				} else {
					it.finish(it.outcome, it.seq)
				}
			case r.Status == http.StatusConflict:
				taken = append(taken, it)
			case retryableStatus(r.Status):
				again = true
				it.retryReason = fmt.Sprintf("HTTP %d: %s: %s", r.Status, r.Error.Type, r.Error.Reason)
			default:
				w.rejected(it, r.Status, r.Error.Type, r.Error.Reason)
			}
		}
	}
	if len(taken) > 0 {
		retry, err := w.judgeTaken(ctx, taken)
		if err != nil {
			return false, err
		}
		again = again || retry
	}
	return again, nil
}

type bulkResponse struct {
	Items []map[string]bulkItemResult `json:"items"`
}

type bulkItemResult struct {
	Status int `json:"status"`
	Error  struct {
		Type   string `json:"type"`
		Reason string `json:"reason"`
	} `json:"error"`
}

// rejected handles an item Elasticsearch refused for a reason retrying
// cannot fix: an event goes to the dead letters with the reason.
func (w *writer) rejected(it *item, status int, typ, reason string) {
	if it.kind == eventItem {
		w.toDead(it, store.DeadLettered, typ, fmt.Sprintf("rejected by Elasticsearch (HTTP %d): %s: %s", status, typ, reason))
		return
	}
	// A dead letter document has almost no mapping; if even it is refused
	// the event cannot be kept, so it must come back (Retry), loudly.
	w.s.logger.Error("Elasticsearch refused a dead letter; the event is reported for retry",
		zap.String("stream", w.stream), zap.String("event_id", it.ev.ID), zap.Int("status", status),
		zap.String("error_type", typ), zap.String("error_reason", reason))
	it.finish(store.Retry, 0)
	it.res.Reason = fmt.Sprintf("dead letter rejected by Elasticsearch (HTTP %d): %s: %s (dead letter reason: %s)", status, typ, reason, it.reason)
}

// judgeTaken looks up the documents whose create answered 409.
func (w *writer) judgeTaken(ctx context.Context, taken []*item) (retry bool, err error) {
	for _, kind := range []itemKind{eventItem, deadItem} {
		var batch []*item
		for _, it := range taken {
			if it.kind == kind {
				batch = append(batch, it)
			}
		}
		if len(batch) == 0 {
			continue
		}
		found, err := w.s.lookup(ctx, indexOf(w.s, kind), idsOf(batch))
		if err != nil {
			return false, err
		}
		for i, it := range batch {
			if !found[i].found {
				// Gone between the 409 and the lookup: send it again.
				it.retryReason = "document reported as existing was not found"
				retry = true
				continue
			}
			w.judge(it, found[i], found[i].seq == it.seq)
		}
	}
	return retry, nil
}

// chunks encodes the items (once) and groups them into requests of at most
// max_bulk_bytes; an item larger than that goes alone.
func (w *writer) chunks(todo []*item) ([][]*item, error) {
	var out [][]*item
	var cur []*item
	size := 0
	for _, it := range todo {
		if it.line == nil {
			// The line holds the canonical JSON (escaped) and the indexed
			// fields, which repeat most of it: size once instead of growing.
			line, err := w.encode(make([]byte, 0, 2*len(it.doc)+512), it)
			if err != nil {
				return nil, err
			}
			it.line = line
		}
		if len(cur) > 0 && size+len(it.line) > w.s.cfg.MaxBulkBytes {
			out = append(out, cur)
			cur, size = nil, 0
		}
		cur = append(cur, it)
		size += len(it.line)
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out, nil
}

// encode appends the item's bulk action line and document line to dst.
func (w *writer) encode(dst []byte, it *item) ([]byte, error) {
	dst = append(dst, `{"create":{"_index":`...)
	dst, _ = canonical.AppendJSON(dst, indexOf(w.s, it.kind))
	dst = append(dst, `,"_id":`...)
	dst, err := canonical.AppendJSON(dst, it.id)
	if err != nil {
		return nil, fmt.Errorf("esstore: event id %q: %w", it.id, err)
	}
	dst = append(dst, "}}\n"...)
	if it.kind == eventItem {
		dst, err = encodeEvent(dst, &it.ev.Event, it.hash, w.stream, it.seq, it.doc, w.ingested)
	} else {
		dst, err = encodeDeadLetter(dst, it, w.stream, w.ingested)
	}
	if err != nil {
		return nil, fmt.Errorf("esstore: %w", err)
	}
	return append(dst, '\n'), nil
}

// existing is what a lookup found under an _id.
type existing struct {
	found bool
	hash  string
	seq   int64
}

// lookup reads event.hash and event.sequence of ids in index with a
// real-time multi-get (no refresh needed). A missing index finds nothing.
func (s *Store) lookup(ctx context.Context, index string, ids []string) ([]existing, error) {
	body, err := json.Marshal(map[string][]string{"ids": ids})
	if err != nil {
		return nil, fmt.Errorf("esstore: lookup: %w", err)
	}
	status, resp, err := s.perform(ctx, "lookup in "+index, func() esapi.Request {
		return esapi.MgetRequest{Index: index, Body: bytes.NewReader(body),
			SourceIncludes: []string{"event.hash", "event.sequence"}}
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
		out[i] = existing{found: d.Found, hash: d.Source.Event.Hash, seq: d.Source.Event.Sequence}
	}
	return out, nil
}
