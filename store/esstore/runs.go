package esstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/batchaudit/batchaudit/canonical"
	"github.com/batchaudit/batchaudit/store"
)

// updateRuns folds the newly stored events into their run summaries: one
// document per batch id in <prefix>-runs, read with a real-time multi-get
// and written back only if nobody changed it meanwhile (if_seq_no and
// if_primary_term; a new run with "create"). On a version conflict the run
// is read and folded again. The numbers of a run's events are released once
// its summary is written: if this fails, Write fails, and the retry reports
// those events Stored again (they are ours) and folds them then, exactly once.
func (w *writer) updateRuns(ctx context.Context, items []*item) error {
	byRun := map[string][]*item{}
	var ids []string
	for _, it := range storedInOrder(items) {
		if b := it.ev.BatchID; b != "" {
			if _, ok := byRun[b]; !ok {
				ids = append(ids, b)
			}
			byRun[b] = append(byRun[b], it)
		}
	}
	index := w.s.cfg.runsIndex()
	for attempt := 1; len(ids) > 0; attempt++ {
		runs, err := w.s.getRuns(ctx, ids)
		if err != nil {
			return err
		}
		var body []byte
		for i, id := range ids {
			r := &runs[i]
			for _, it := range byRun[id] {
				store.ApplyToRun(&r.run, &it.ev.Event)
			}
			if r.found {
				body = fmt.Appendf(body, `{"index":{"_index":%q,"if_seq_no":%d,"if_primary_term":%d,"_id":`, index, r.seqNo, r.primaryTerm)
			} else {
				body = fmt.Appendf(body, `{"create":{"_index":%q,"_id":`, index)
			}
			body, _ = canonical.AppendJSON(body, id)
			doc, err := json.Marshal(&r.run)
			if err != nil {
				return fmt.Errorf("esstore: encode run %s: %w", id, err)
			}
			body = append(append(append(body, "}}\n"...), doc...), '\n')
		}
		status, resp, err := w.s.perform(ctx, "update runs", func() esapi.Request {
			return esapi.BulkRequest{Body: bytes.NewReader(body), FilterPath: []string{"items.*.status", "items.*.error.type", "items.*.error.reason"}}
		})
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			return statusError("update runs", status, resp)
		}
		var br bulkResponse
		if err := json.Unmarshal(resp, &br); err != nil || len(br.Items) != len(ids) {
			return fmt.Errorf("esstore: update runs: unexpected response: %v: %s", err, truncate(string(resp), 300))
		}
		var again []string
		var lastErr error
		for i, id := range ids {
			var r bulkItemResult
			for _, v := range br.Items[i] {
				r = v
			}
			switch {
			case r.Status >= 200 && r.Status < 300:
				for _, it := range byRun[id] {
					delete(w.st.pending, it.key)
				}
			case r.Status == http.StatusConflict || retryableStatus(r.Status):
				again = append(again, id)
				lastErr = fmt.Errorf("esstore: update run %s: HTTP %d: %s: %s", id, r.Status, r.Error.Type, r.Error.Reason)
			default:
				return fmt.Errorf("esstore: update run %s: HTTP %d: %s: %s", id, r.Status, r.Error.Type, r.Error.Reason)
			}
		}
		ids = again
		if len(ids) > 0 {
			if werr := w.s.wait(ctx, attempt); werr != nil {
				return fmt.Errorf("%w (gave up: %v)", lastErr, werr)
			}
		}
	}
	return nil
}

type runDoc struct {
	run         store.Run
	found       bool
	seqNo       int64
	primaryTerm int64
}

// getRuns reads run summaries with their versions, in the order of ids.
func (s *Store) getRuns(ctx context.Context, ids []string) ([]runDoc, error) {
	index := s.cfg.runsIndex()
	body, err := json.Marshal(map[string][]string{"ids": ids})
	if err != nil {
		return nil, fmt.Errorf("esstore: read runs: %w", err)
	}
	status, resp, err := s.perform(ctx, "read runs", func() esapi.Request {
		return esapi.MgetRequest{Index: index, Body: bytes.NewReader(body)}
	})
	if err != nil {
		return nil, err
	}
	out := make([]runDoc, len(ids))
	if status != http.StatusOK {
		if t, _ := errorOf(resp); status == http.StatusNotFound && t == "index_not_found_exception" {
			return out, nil
		}
		return nil, statusError("read runs", status, resp)
	}
	var r struct {
		Docs []struct {
			Found       bool            `json:"found"`
			SeqNo       int64           `json:"_seq_no"`
			PrimaryTerm int64           `json:"_primary_term"`
			Source      json.RawMessage `json:"_source"`
			Error       *struct {
				Type   string `json:"type"`
				Reason string `json:"reason"`
			} `json:"error"`
		} `json:"docs"`
	}
	if err := json.Unmarshal(resp, &r); err != nil || len(r.Docs) != len(ids) {
		return nil, fmt.Errorf("esstore: read runs: unexpected response: %v: %s", err, truncate(string(resp), 300))
	}
	for i, d := range r.Docs {
		if d.Error != nil && d.Error.Type != "index_not_found_exception" {
			return nil, fmt.Errorf("esstore: read run %s: %s: %s", ids[i], d.Error.Type, d.Error.Reason)
		}
		if !d.Found {
			continue
		}
		out[i] = runDoc{found: true, seqNo: d.SeqNo, primaryTerm: d.PrimaryTerm}
		if err := json.Unmarshal(d.Source, &out[i].run); err != nil {
			return nil, fmt.Errorf("esstore: run %s: %w", ids[i], err)
		}
	}
	return out, nil
}
