package esstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/batchaudit/batchaudit/store"
)

// runDoc is a run summary with its version, for optimistic concurrency.
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
