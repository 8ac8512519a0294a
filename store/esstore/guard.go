package esstore

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strings"

	"github.com/elastic/go-elasticsearch/v8/esapi"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.uber.org/zap"

	"github.com/batchaudit/batchaudit/store"
)

// The index guard: the collector never writes into an index that lacks
// batchaudit's mapping.
//
// Every index has a write alias, <index>-write, that only batchaudit puts:
// the index template adds it to each index it creates, and installTemplates
// (batchaudit es setup) adds it to an existing index only after checking its
// mapping. Writes go through the alias with require_alias, so when the index
// is gone (deleted, or the node lost its data) Elasticsearch answers the
// bulk items with 404 instead of auto-creating an unmapped index; the writer
// role holds its write privileges on the alias names only, so even a request
// without require_alias cannot create or reach any other index.

// WriteAlias is the alias through which the collector writes into index.
func WriteAlias(index string) string { return index + "-write" }

// missingAlias reports whether a bulk op failed because its write alias
// does not exist (require_alias).
func (o *bulkOp) missingAlias() bool {
	return o.status == http.StatusNotFound && o.errType == "index_not_found_exception"
}

// indexMissing handles bulk ops whose write alias is missing (reason is
// Elasticsearch's, naming the alias). It reports streams whose stored
// history vanished with the index, then re-installs the templates and
// indices when the store may (install_templates: the caller resends the
// ops), or returns what the operator must do. The error is never
// permanent: the events stay queued until the index is back.
func (s *Store) indexMissing(ctx context.Context, reason string) error {
	s.reportLostHistory(ctx)
	if !s.cfg.InstallTemplates {
		err := fmt.Errorf("esstore: %s: the index was deleted, the node lost its data, or it was never set up; "+
			"run `batchaudit es setup` as an administrator (install_templates is off, so the collector does not "+
			"create indices itself; the events stay queued)", reason)
		// At error level on every attempt: the collector's own retry log is info.
		s.logger.Error("Elasticsearch index missing; nothing is stored until it is set up again", zap.Error(err))
		return err
	}
	s.logger.Error("Elasticsearch index missing (deleted, or the node lost its data); installing the templates and indices again",
		zap.String("reason", reason))
	s.readyMu.Lock()
	s.ready = false
	s.readyMu.Unlock()
	if err := s.ensureReady(ctx); err != nil {
		// Never permanent (e.g. a 403 after the role changed).
		return fmt.Errorf("esstore: installing the missing indices again: %s", err.Error())
	}
	return nil
}

// noteStored remembers the highest sequence this process stored per
// stream, the reference of reportLostHistory.
func (s *Store) noteStored(stream string, entries []*store.Entry) {
	s.lostMu.Lock()
	defer s.lostMu.Unlock()
	for _, e := range entries {
		if e.Status == store.Created && e.Sequence > s.written[stream] {
			s.written[stream] = e.Sequence
		}
	}
}

// reportLostHistory logs an integrity alarm for every stream of which the
// store now holds less than this process stored. It reports each loss once.
func (s *Store) reportLostHistory(ctx context.Context) {
	s.lostMu.Lock()
	written := maps.Clone(s.written)
	s.lostMu.Unlock()
	for stream, known := range written {
		have, err := s.LastSequence(ctx, stream)
		if err != nil || have >= known {
			continue
		}
		s.lostMu.Lock()
		reported := s.lost[stream] == known
		s.lost[stream] = known
		s.lostMu.Unlock()
		if reported {
			continue
		}
		s.logger.Error("integrity alarm: the stored history of this stream vanished from Elasticsearch (the index was "+
			"deleted or the node lost its data); `batchaudit verify` and the signed checkpoints show what is missing",
			zap.String("stream", stream), zap.Int64("last_sequence_written", known), zap.Int64("last_sequence_stored", have))
	}
}

// ensureAlias adds index's write alias, after checking that index has
// batchaudit's mapping.
func (s *Store) ensureAlias(ctx context.Context, index string) error {
	problems, _, err := s.checkMapping(ctx, index)
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return consumererror.NewPermanent(fmt.Errorf("esstore: index %s exists without batchaudit's mapping, so the collector "+
			"will not write into it: %s (if it was created by a write before the templates were installed, delete it "+
			"and run `batchaudit es setup`)", index, strings.Join(problems, "; ")))
	}
	alias := WriteAlias(index)
	status, resp, err := s.perform(ctx, "put alias "+alias, func() esapi.Request {
		return esapi.IndicesPutAliasRequest{Index: []string{index}, Name: alias}
	})
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return statusError("put alias "+alias, status, resp)
	}
	return nil
}

// CheckMappings compares the live mappings of the trail's indices with
// batchaudit's and describes every difference: a changed or added field, a
// runtime field (it shadows a stored field in searches), dynamic mapping
// switched on. A create_doc writer can still change mappings in
// Elasticsearch 8 (docs/elasticsearch.md), so `batchaudit verify` runs this.
// Notes say what was not checked (a mapping of a newer batchaudit). A
// missing index is not reported here. It needs view_index_metadata.
func (s *Store) CheckMappings(ctx context.Context) (problems, notes []string, err error) {
	for _, index := range Indices(s.cfg.IndexPrefix) {
		p, n, err := s.checkMapping(ctx, index)
		if err != nil {
			return nil, nil, err
		}
		problems, notes = append(problems, p...), append(notes, n...)
	}
	return problems, notes, nil
}

// checkMapping describes how index's live mapping differs from ours.
func (s *Store) checkMapping(ctx context.Context, index string) (problems, notes []string, err error) {
	status, resp, err := s.perform(ctx, "get mapping "+index, func() esapi.Request {
		return esapi.IndicesGetMappingRequest{Index: []string{index}}
	})
	if err != nil {
		return nil, nil, err
	}
	if status == http.StatusNotFound {
		return nil, nil, nil
	}
	if status != http.StatusOK {
		return nil, nil, statusError("get mapping "+index, status, resp)
	}
	var live map[string]struct {
		Mappings map[string]any `json:"mappings"`
	}
	if err := json.Unmarshal(resp, &live); err != nil {
		return nil, nil, fmt.Errorf("esstore: get mapping %s: %w", index, err)
	}
	var want map[string]any
	if err := json.Unmarshal([]byte(s.cfg.mappings()[index]), &want); err != nil {
		return nil, nil, fmt.Errorf("esstore: mapping of %s: %w", index, err)
	}
	for name, m := range live { // one entry: the index itself
		if v := mappingVersion(m.Mappings); v > templateVersion {
			// A newer batchaudit may add fields: leave its mapping alone.
			notes = append(notes, fmt.Sprintf("index %s: its mapping is from a newer batchaudit (version %d, this is %d) and was not checked", name, v, templateVersion))
			continue
		}
		problems = append(problems, compareMapping(name, m.Mappings, want)...)
	}
	return problems, notes, nil
}

// compareMapping lists the differences of a live mapping from want.
func compareMapping(index string, live, want map[string]any) []string {
	var out []string
	if d := fmt.Sprint(live["dynamic"]); d != "false" {
		out = append(out, fmt.Sprintf("index %s: dynamic mapping is %q, batchaudit's is \"false\"", index, d))
	}
	if rt, ok := live["runtime"].(map[string]any); ok && len(rt) > 0 {
		out = append(out, fmt.Sprintf("index %s: runtime fields %s are defined; they shadow stored fields in searches", index, strings.Join(sortedKeys(rt), ", ")))
	}
	lp, _ := live["properties"].(map[string]any)
	wp, _ := want["properties"].(map[string]any)
	return append(out, compareProperties(index, "", lp, wp)...)
}

func compareProperties(index, path string, live, want map[string]any) []string {
	var out []string
	for _, name := range sortedKeys(want) {
		field := path + name
		w, _ := want[name].(map[string]any)
		l, ok := live[name].(map[string]any)
		if !ok {
			out = append(out, fmt.Sprintf("index %s: field %s is missing", index, field))
			continue
		}
		wsub, wObj := w["properties"].(map[string]any)
		lsub, lObj := l["properties"].(map[string]any)
		if wObj && lObj && len(w) == 1 && len(l) == 1 {
			out = append(out, compareProperties(index, field+".", lsub, wsub)...)
			continue
		}
		if !reflect.DeepEqual(normalizeField(l), normalizeField(w)) {
			lj, _ := json.Marshal(l)
			wj, _ := json.Marshal(w)
			out = append(out, fmt.Sprintf("index %s: field %s is mapped as %s, batchaudit maps it as %s", index, field, lj, wj))
		}
	}
	for _, name := range sortedKeys(live) {
		if _, ok := want[name]; !ok {
			out = append(out, fmt.Sprintf("index %s: field %s is not batchaudit's (added by a mapping update)", index, path+name))
		}
	}
	return out
}

// normalizeField makes JSON values comparable: Elasticsearch returns some
// settings as strings ("false") that were put as booleans or numbers.
func normalizeField(m map[string]any) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			b, _ := json.Marshal(sub)
			out[k] = string(b)
			continue
		}
		out[k] = fmt.Sprint(v)
	}
	return out
}

func mappingVersion(m map[string]any) int {
	meta, _ := m["_meta"].(map[string]any)
	v, _ := meta["version"].(float64)
	return int(v)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		if k != "_meta" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}
