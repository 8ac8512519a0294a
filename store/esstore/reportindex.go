package esstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/batchaudit/batchaudit/store"
)

var _ store.ReportIndex = (*Store)(nil)

// ReportsIndex is the index of generated reports (store.ReportIndex).
func ReportsIndex(prefix string) string { return prefix + "-reports" }

// Indices lists every index (and index template) a store with this prefix
// creates.
func Indices(prefix string) []string {
	return []string{EventsIndex(prefix), RunsIndex(prefix), DeadLettersIndex(prefix), ReportsIndex(prefix),
		TilesIndex(prefix), CheckpointsIndex(prefix)}
}

func (c *Config) reportsIndex() string { return ReportsIndex(c.IndexPrefix) }

// reportsMapping indexes store.ReportRecord as JSON; one document per
// report, _id = report id.
var reportsMapping = `{"dynamic":false,` + mappingMeta + `,"properties":{` + strings.Join([]string{
	f("id", kw), f("kind", kw), f("schedule", kw), f("from", dateT), f("to", dateT), f("filters", kw),
	f("generated_at", dateT), f("content_sha256", kw), f("location", kw), f("files", kw),
	f("checkpoints", props(f("stream", kw), f("size", longT), f("note", `{"type":"text","index":false}`))),
}, ",") + `}}`

// RecordReport implements store.ReportIndex with a "create": an id already
// recorded answers 409 and is left as it is.
func (s *Store) RecordReport(ctx context.Context, r store.ReportRecord) (bool, error) {
	if err := s.ensureReady(ctx); err != nil {
		return false, err
	}
	doc, err := json.Marshal(r)
	if err != nil {
		return false, fmt.Errorf("esstore: encode report %s: %w", r.ID, err)
	}
	index := s.cfg.reportsIndex()
	for recovered := false; ; recovered = true {
		// Through the write alias, like events (guard.go).
		status, resp, err := s.perform(ctx, "record report "+r.ID, func() esapi.Request {
			// The id goes into the URL path unescaped by the client, and
			// scheduled reports' ids hold a '/'.
			return esapi.CreateRequest{Index: WriteAlias(index), DocumentID: url.PathEscape(r.ID), Body: bytes.NewReader(doc), RequireAlias: ptr(true)}
		})
		if err != nil {
			return false, err
		}
		switch t, reason := errorOf(resp); {
		case status == http.StatusCreated, status == http.StatusOK:
			return true, nil
		case status == http.StatusConflict:
			return false, nil
		case status == http.StatusNotFound && t == "index_not_found_exception" && !recovered:
			if err := s.indexMissing(ctx, reason); err != nil {
				return false, err
			}
			continue
		}
		return false, statusError("record report "+r.ID, status, resp)
	}
}

// Reports implements store.ReportIndex: records whose period overlaps
// [From, To).
func (s *Store) Reports(ctx context.Context, q store.ReportQuery) ([]store.ReportRecord, error) {
	var filter []any
	if q.Kind != "" {
		filter = append(filter, term("kind", q.Kind))
	}
	if q.Schedule != "" {
		filter = append(filter, term("schedule", q.Schedule))
	}
	if !q.From.IsZero() {
		filter = append(filter, map[string]any{"range": map[string]any{"to": map[string]any{"gt": q.From.UTC().Format(timeLayout), "format": rangeFormat}}})
	}
	if !q.To.IsZero() {
		filter = append(filter, map[string]any{"range": map[string]any{"from": map[string]any{"lt": q.To.UTC().Format(timeLayout), "format": rangeFormat}}})
	}
	sort := []any{map[string]any{"from": "asc"}, map[string]any{"id": "asc"}}
	var out []store.ReportRecord
	err := s.search(ctx, s.cfg.reportsIndex(), filter, sort, 0, nil, func(src json.RawMessage) error {
		var r store.ReportRecord
		if err := json.Unmarshal(src, &r); err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	return out, err
}
