package esstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/batchaudit/batchaudit/canonical"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/merkle"
)

// Retention's primitives (store.Pruner). Removing documents needs the
// batchaudit_admin role: the writer's create_doc cannot delete (each of its
// bulk "delete" items answers 403).

var _ store.Pruner = (*Store)(nil)

var errStop = errors.New("stop")

// EachEntryAge implements store.Pruner.
func (s *Store) EachEntryAge(ctx context.Context, stream string, fn func(store.EntryAge) bool) error {
	src := []string{"@timestamp", "event.sequence", "event.ingested", "batchaudit.entry_kind", "batchaudit.batch.id"}
	err := s.entries(ctx, stream, 0, false, 0, src, func(h *entryHit) error {
		var d struct {
			Timestamp  string `json:"@timestamp"`
			Batchaudit struct {
				Batch struct {
					ID string `json:"id"`
				} `json:"batch"`
			} `json:"batchaudit"`
		}
		if err := json.Unmarshal(h.Raw, &d); err != nil {
			return fmt.Errorf("esstore: stream %q: document %s: %w", stream, h.ID, err)
		}
		a := store.EntryAge{Sequence: h.Source.Event.Sequence, Kind: merkle.KindEvent}
		if h.Index != s.cfg.eventsIndex() {
			a.Kind = deadKind(h.Source.Batchaudit.EntryKind)
		} else {
			a.BatchID = d.Batchaudit.Batch.ID
		}
		for _, ts := range []string{d.Timestamp, h.Source.Event.Ingested} {
			t, err := time.Parse(time.RFC3339Nano, ts)
			if err != nil {
				return fmt.Errorf("esstore: stream %q: entry %d: time %q: %w", stream, a.Sequence, ts, err)
			}
			if t.After(a.Time) {
				a.Time = t.UTC()
			}
		}
		if !fn(a) {
			return errStop
		}
		return nil
	})
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

// RunExtents implements store.Pruner: one aggregation per chunk of ids.
func (s *Store) RunExtents(ctx context.Context, stream string, batchIDs []string) (map[string]store.RunExtent, error) {
	index := s.cfg.eventsIndex()
	if err := s.refresh(ctx, index); err != nil {
		return nil, err
	}
	out := map[string]store.RunExtent{}
	for len(batchIDs) > 0 {
		n := min(len(batchIDs), 1000)
		req := map[string]any{"size": 0, "track_total_hits": false,
			"query": map[string]any{"terms": map[string]any{"batchaudit.batch.id": batchIDs[:n]}},
			"aggs": map[string]any{"runs": map[string]any{
				"terms": map[string]any{"field": "batchaudit.batch.id", "size": n},
				"aggs": map[string]any{
					"here":      map[string]any{"filter": term("batchaudit.stream", stream), "aggs": map[string]any{"last": map[string]any{"max": map[string]any{"field": "event.sequence"}}}},
					"elsewhere": map[string]any{"filter": map[string]any{"bool": map[string]any{"must_not": []any{term("batchaudit.stream", stream)}}}},
				},
			}},
		}
		var r struct {
			Aggregations struct {
				Runs struct {
					Buckets []struct {
						Key  string `json:"key"`
						Here struct {
							Last struct {
								Value *float64 `json:"value"`
							} `json:"last"`
						} `json:"here"`
						Elsewhere struct {
							DocCount int64 `json:"doc_count"`
						} `json:"elsewhere"`
					} `json:"buckets"`
				} `json:"runs"`
			} `json:"aggregations"`
		}
		if err := s.searchRequest(ctx, index, req, &r); err != nil {
			return nil, err
		}
		for _, b := range r.Aggregations.Runs.Buckets {
			if b.Here.Last.Value != nil {
				out[b.Key] = store.RunExtent{Last: int64(*b.Here.Last.Value), Elsewhere: b.Elsewhere.DocCount > 0}
			}
		}
		batchIDs = batchIDs[n:]
	}
	return out, nil
}

// Prune implements store.Pruner: the entries are found page by page and
// deleted with bulk "delete" actions through the write aliases (no
// _delete_by_query: not every cluster has the reindex module), then the
// run summaries by id. The tiles and checkpoints indices are never touched.
func (s *Store) Prune(ctx context.Context, stream string, through int64, runs []string) (int64, error) {
	indices := s.cfg.eventsIndex() + "," + s.cfg.deadLettersIndex()
	var n int64
	for {
		if err := s.refresh(ctx, s.cfg.eventsIndex(), s.cfg.deadLettersIndex()); err != nil {
			return n, err
		}
		var r struct {
			Hits struct {
				Hits []struct {
					Index string `json:"_index"`
					ID    string `json:"_id"`
				} `json:"hits"`
			} `json:"hits"`
		}
		err := s.searchRequest(ctx, indices, map[string]any{"size": pageSize, "_source": false, "track_total_hits": false,
			"query": map[string]any{"bool": map[string]any{"filter": []any{
				term("batchaudit.stream", stream),
				map[string]any{"range": map[string]any{"event.sequence": map[string]any{"lte": through}}},
			}}},
			"sort": []any{map[string]any{"event.sequence": "asc"}}}, &r)
		if err != nil {
			return n, err
		}
		if len(r.Hits.Hits) == 0 {
			break
		}
		ids := make([][2]string, len(r.Hits.Hits))
		for i, h := range r.Hits.Hits {
			ids[i] = [2]string{h.Index, h.ID}
		}
		k, err := s.deleteDocs(ctx, ids)
		n += k
		if err != nil {
			return n, err
		}
	}
	ids := make([][2]string, len(runs))
	for i, id := range runs {
		ids[i] = [2]string{s.cfg.runsIndex(), id}
	}
	_, err := s.deleteDocs(ctx, ids)
	return n, err
}

// SharedWriters implements store.Pruner: one writer per stream.
func (*Store) SharedWriters() bool { return false }

// CheckPrune implements store.Pruner with _has_privileges: the identity
// needs create_doc on the events, tiles and checkpoints write aliases and
// delete on those of the events, dead letters and runs (the
// batchaudit_admin role has them; the writer lacks delete). A cluster
// without security has no such endpoint and lets everyone.
func (s *Store) CheckPrune(ctx context.Context) error {
	want := map[string][]string{
		WriteAlias(s.cfg.eventsIndex()):      {"create_doc", "delete"},
		WriteAlias(s.cfg.deadLettersIndex()): {"delete"},
		WriteAlias(s.cfg.runsIndex()):        {"delete"},
		WriteAlias(s.cfg.tilesIndex()):       {"create_doc"},
		WriteAlias(s.cfg.checkpointsIndex()): {"create_doc"},
	}
	var req []any
	for _, name := range slices.Sorted(maps.Keys(want)) {
		req = append(req, map[string]any{"names": []string{name}, "privileges": want[name]})
	}
	body, err := json.Marshal(map[string]any{"index": req})
	if err != nil {
		return err
	}
	status, resp, err := s.perform(ctx, "has privileges", func() esapi.Request {
		return esapi.SecurityHasPrivilegesRequest{Body: bytes.NewReader(body)}
	})
	if err != nil {
		return err
	}
	if _, r := errorOf(resp); (status == http.StatusBadRequest || status == http.StatusMethodNotAllowed) &&
		(strings.Contains(r, "no handler found") || strings.Contains(r, "Incorrect HTTP method")) {
		return nil // security is off
	}
	if status != http.StatusOK {
		return statusError("has privileges", status, resp)
	}
	var r struct {
		All   bool                       `json:"has_all_requested"`
		Index map[string]map[string]bool `json:"index"`
	}
	if err := json.Unmarshal(resp, &r); err != nil {
		return fmt.Errorf("esstore: has privileges: %w", err)
	}
	if r.All {
		return nil
	}
	var missing []string
	for _, name := range slices.Sorted(maps.Keys(r.Index)) {
		for _, p := range slices.Sorted(maps.Keys(r.Index[name])) {
			if !r.Index[name][p] {
				missing = append(missing, p+" on "+name)
			}
		}
	}
	return fmt.Errorf("esstore: these credentials may not prune: they lack %s (run retention with the batchaudit_admin role's credentials)", strings.Join(missing, ", "))
}

// deleteDocs deletes documents (index, _id) through the indices' write
// aliases and returns how many it deleted; one already gone is no error.
func (s *Store) deleteDocs(ctx context.Context, docs [][2]string) (int64, error) {
	if len(docs) == 0 {
		return 0, nil
	}
	ops := make([]*bulkOp, len(docs))
	for i, d := range docs {
		line := fmt.Appendf(nil, `{"delete":{"_index":%q,"_id":`, WriteAlias(d[0]))
		line, err := canonical.AppendJSON(line, d[1])
		if err != nil {
			return 0, fmt.Errorf("esstore: id %q: %w", d[1], err)
		}
		ops[i] = &bulkOp{line: append(line, "}}\n"...)}
	}
	if err := s.bulk(ctx, ops); err != nil {
		return 0, err
	}
	var n int64
	for i, o := range ops {
		switch {
		case o.ok():
			n++
		case o.status == http.StatusNotFound && o.errType == "":
		default:
			return n, fmt.Errorf("esstore: delete %s/%s: HTTP %d: %s: %s", docs[i][0], docs[i][1], o.status, o.errType, o.errReason)
		}
	}
	return n, nil
}
