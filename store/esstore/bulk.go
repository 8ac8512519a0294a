package esstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/elastic/go-elasticsearch/v8/esapi"
	"go.opentelemetry.io/collector/consumer/consumererror"
)

// bulkOp is one action of a bulk request (its action and document lines)
// and, once sent, Elasticsearch's answer for it.
type bulkOp struct {
	line []byte
	// Status is the item's final HTTP status: 2xx, 409, another 4xx (the
	// document is refused), or 429/5xx when the retries ran out.
	status             int
	errType, errReason string
}

func (o *bulkOp) ok() bool { return o.status >= 200 && o.status < 300 }

// bulk sends the ops in requests of at most max_bulk_bytes, up to
// max_in_flight at a time, until every op has a final status: items
// answered 429 or 5xx are resent (alone, never the ones already answered)
// after a backoff until retry.max_attempts or ctx ends. A request refused as
// a whole (413, 400) is halved until the offending op is alone, which then
// gets that status. The error is for request-level failures that retries
// could not fix, or permanent ones (401, 403, no _bulk endpoint).
func (s *Store) bulk(ctx context.Context, ops []*bulkOp) error {
	todo := ops
	for attempt := 1; len(todo) > 0; attempt++ {
		if err := s.bulkRound(ctx, todo); err != nil {
			return err
		}
		var again, lost []*bulkOp
		for _, o := range todo {
			if retryableStatus(o.status) {
				again = append(again, o)
			}
			if o.missingAlias() {
				lost = append(lost, o)
			}
		}
		if len(lost) > 0 { // the index is gone: guard.go
			if err := s.indexMissing(ctx, lost[0].errReason); err != nil {
				return err
			}
			again = append(again, lost...)
		}
		if len(again) == 0 {
			return nil
		}
		if err := s.wait(ctx, attempt); err != nil {
			return nil // their retryable status stands; the caller fails them
		}
		todo = again
	}
	return nil
}

// bulkRound sends every op once.
func (s *Store) bulkRound(ctx context.Context, ops []*bulkOp) error {
	var chunks [][]*bulkOp
	var cur []*bulkOp
	size := 0
	for _, o := range ops {
		if len(cur) > 0 && size+len(o.line) > s.cfg.MaxBulkBytes {
			chunks = append(chunks, cur)
			cur, size = nil, 0
		}
		cur = append(cur, o)
		size += len(o.line)
	}
	if len(cur) > 0 {
		chunks = append(chunks, cur)
	}
	work := make(chan []*bulkOp)
	errs := make(chan error, len(chunks))
	var wg sync.WaitGroup
	for range min(s.cfg.MaxInFlight, len(chunks)) {
		wg.Go(func() {
			for c := range work {
				errs <- s.bulkChunk(ctx, c)
			}
		})
	}
	for _, c := range chunks {
		work <- c
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// bulkChunk sends one request, splitting it when it is refused as a whole.
func (s *Store) bulkChunk(ctx context.Context, chunk []*bulkOp) error {
	var body bytes.Buffer
	for _, o := range chunk {
		body.Write(o.line)
	}
	status, resp, err := s.perform(ctx, "bulk", func() esapi.Request {
		// Through write aliases only, never auto-creating an index (guard.go).
		return esapi.BulkRequest{Body: bytes.NewReader(body.Bytes()), IncludeSourceOnError: ptr(false), RequireAlias: ptr(true),
			FilterPath: []string{"errors", "items.*.status", "items.*.error.type", "items.*.error.reason"}}
	})
	if err != nil {
		return err
	}
	switch {
	case status == http.StatusRequestEntityTooLarge || status == http.StatusBadRequest:
		if len(chunk) > 1 {
			h := len(chunk) / 2
			if err := s.bulkChunk(ctx, chunk[:h]); err != nil {
				return err
			}
			return s.bulkChunk(ctx, chunk[h:])
		}
		t, r := errorOf(resp)
		if t == "" {
			t, r = http.StatusText(status), truncate(string(resp), 300)
		}
		chunk[0].status, chunk[0].errType, chunk[0].errReason = status, t, withoutValues(r)
		return nil
	case status == http.StatusNotFound:
		// No _bulk endpoint: the URL does not point at Elasticsearch.
		return consumererror.NewPermanent(statusError("bulk (is the endpoint an Elasticsearch node?)", status, resp))
	case status != http.StatusOK:
		return statusError("bulk", status, resp)
	}
	var br struct {
		Items []map[string]struct {
			Status int `json:"status"`
			Error  struct {
				Type   string `json:"type"`
				Reason string `json:"reason"`
			} `json:"error"`
		} `json:"items"`
	}
	if err := json.Unmarshal(resp, &br); err != nil || len(br.Items) != len(chunk) {
		return fmt.Errorf("esstore: bulk: unexpected response (%d items for %d sent): %v: %s",
			len(br.Items), len(chunk), err, truncate(string(resp), 300))
	}
	for i, o := range chunk {
		for _, r := range br.Items[i] {
			o.status, o.errType, o.errReason = r.Status, r.Error.Type, withoutValues(r.Error.Reason)
		}
	}
	return nil
}

// valuePreview starts the excerpt of a document's value that Elasticsearch
// appends to mapping errors ("failed to parse field [n] of type [long] in
// document with id '…'. Preview of field's value: '…'"); the bulk option
// include_source_on_error=false does not suppress it (8.19).
const valuePreview = "Preview of field's value:"

// withoutValues drops that excerpt: the reason is logged and kept with the
// dead letter, and the value may be personal data (docs/privacy.md). The
// field and the type stay.
func withoutValues(reason string) string {
	if i := strings.Index(reason, valuePreview); i >= 0 {
		return strings.TrimRight(reason[:i], " .") + " (value not repeated)"
	}
	return reason
}
