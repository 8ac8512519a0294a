package esstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/elastic/go-elasticsearch/v8/esapi"
	"go.opentelemetry.io/collector/consumer/consumererror"
)

// The mappings use core field types only (keyword, text, date, date_nanos,
// long, double, boolean, object, flattened, alias), no ILM, no ingest pipeline and
// no scripts, so they install on any 8.x node. dynamic: false keeps unknown
// fields in _source without growing the mapping. Free-form maps (labels,
// record data, change values, params, lineage) are flattened: their leaves
// are searchable as keywords and no key can cause a mapping explosion.
// _meta.version is templateVersion, so a checker knows a newer batchaudit's
// mapping.
const (
	kw      = `{"type":"keyword","ignore_above":1024}`
	flat    = `{"type":"flattened","ignore_above":1024}`
	longT   = `{"type":"long"}`
	dateT   = `{"type":"date"}`
	text    = `{"type":"text"}`
	blob    = `{"type":"object","enabled":false}`
	dataset = `{"properties":{"namespace":` + kw + `,"name":` + kw + `,"dataset":` + kw + `}}`
)

func props(fields ...string) string {
	return `{"properties":{` + strings.Join(fields, ",") + `}}`
}

func f(name, mapping string) string { return `"` + name + `":` + mapping }

var eventsMapping = `{"dynamic":false,` + mappingMeta + `,"properties":{` + strings.Join([]string{
	f("@timestamp", `{"type":"date_nanos"}`),
	f("message", text),
	f("log", props(f("level", kw))),
	f("event", props(f("id", kw), f("action", kw), f("kind", kw), f("category", kw), f("type", kw),
		f("outcome", kw), f("sequence", longT), f("hash", kw), f("ingested", dateT))),
	f("user", props(f("id", kw), f("name", kw), f("roles", kw))),
	f("trace", props(f("id", kw))),
	f("span", props(f("id", kw))),
	f("error", props(f("type", kw), f("message", text), f("stack_trace", `{"type":"text","index":false}`))),
	f("labels", flat),
	f("batchaudit", props(
		f("stream", kw),
		f("category", kw),
		f("canonical", blob),
		f("batch", props(f("id", kw), f("parent_id", kw), f("state", kw), f("result", kw), f("run_type", kw), f("logical_date", kw),
			f("records", props(f("read", longT), f("written", longT), f("skipped", longT), f("errored", longT))),
			f("bytes", props(f("read", longT), f("written", longT))))),
		f("job", props(f("name", kw), f("namespace", kw), f("version", kw), f("config_hash", kw), f("config", flat))),
		f("auth", props(f("principal", kw))),
		f("actor", props(f("type", kw))),
		f("source", dataset),
		f("target", dataset),
		f("record", props(f("id", kw), f("key_fields", kw), f("hash", kw), f("hash_algorithm", kw), f("sender_hash", kw), f("hash_check", kw),
			f("previous_hash", kw), f("data", flat), f("skip_reason", kw), f("partition", kw))),
		f("change", props(f("type", kw), f("fields", kw), f("old_value", flat), f("new_value", flat))),
		f("lineage", props(f("id", kw), f("input_record_ids", kw), f("input_hash", kw), f("chain", flat),
			f("inputs", kw), f("outputs", kw), f("columns", flat), f("record_count", longT))),
		f("transform", props(f("name", kw), f("sequence", longT), f("type", kw), f("subtype", kw), f("params", flat))),
		f("checkpoint", props(f("id", kw), f("position", kw), f("records_processed", longT))),
		f("validation", props(f("rule", kw), f("severity", kw), f("column", kw), f("expected", kw), f("actual", kw))),
		f("finding", props(f("type", kw), f("severity", kw), f("record_ids", kw), f("message", text))),
		f("compliance", props(f("frameworks", kw))),
		f("data", props(f("classification", kw))),
		f("original_format", kw),
		f("derived_by", kw),
	)),
}, ",") + `}}`

var runsMapping = `{"dynamic":false,` + mappingMeta + `,"properties":{` + strings.Join([]string{
	f("batch_id", kw), f("parent_batch_id", kw), f("job_name", kw), f("job_namespace", kw),
	f("actor", props(f("id", kw), f("name", kw), f("type", kw), f("roles", kw))),
	f("status", kw), f("start", dateT), f("end", dateT), f("duration_seconds", `{"type":"double"}`),
	f("read", longT), f("written", longT), f("skipped", longT), f("errored", longT),
	f("inserted", longT), f("updated", longT), f("deleted", longT), f("unchanged", longT),
	f("findings", longT), f("events", longT), f("sources", kw), f("targets", kw),
	// The events' name for the batch id, so that one query
	// (batchaudit.batch.id:"...") selects a run across all indices.
	f("batchaudit", props(f("batch", props(f("id", `{"type":"alias","path":"batch_id"}`))))),
	f("job_version", kw), f("config_hash", kw), f("run_type", kw), f("logical_date", kw), f("principals", kw),
	// Per stream, the last sequence folded into the summary (bookkeeping).
	f("through", `{"type":"object","enabled":false}`),
}, ",") + `}}`

// tilesMapping: the Merkle tiles of every stream (c2sp.org/tlog-tiles,
// height 8); _id stream/level/index/width, so a wider version is a new
// document (the writer only creates).
var tilesMapping = `{"dynamic":false,` + mappingMeta + `,"properties":{` + strings.Join([]string{
	f("stream", kw), f("level", `{"type":"integer"}`), f("idx", longT), f("width", `{"type":"integer"}`),
	f("data", `{"type":"binary"}`),
}, ",") + `}}`

// checkpointsMapping: signed tree heads; _id stream/size.
var checkpointsMapping = `{"dynamic":false,` + mappingMeta + `,"properties":{` + strings.Join([]string{
	f("stream", kw), f("size", longT), f("root", kw), f("note", `{"type":"text","index":false}`), f("created", dateT),
}, ",") + `}}`

var deadLettersMapping = `{"dynamic":false,` + mappingMeta + `,"properties":{` + strings.Join([]string{
	f("@timestamp", `{"type":"date_nanos"}`),
	f("event", props(f("id", kw), f("action", kw), f("kind", kw), f("sequence", longT), f("hash", kw), f("ingested", dateT))),
	f("error", props(f("type", kw), f("message", text))),
	f("batchaudit", props(f("stream", kw), f("entry_kind", kw), f("doc_hash", kw), f("conflict", `{"type":"boolean"}`), f("reason", text),
		f("document", blob), f("existing_hash", kw), f("batch", props(f("id", kw))))),
}, ",") + `}}`

// templateVersion is bumped with every mapping or template change; a newer
// template then replaces the installed one (new indices pick it up).
const templateVersion = 5

var mappingMeta = fmt.Sprintf(`"_meta":{"managed_by":"batchaudit","version":%d}`, templateVersion)

// indexTemplate is a composable template for exactly one index name. It
// gives the index its write alias (guard.go).
func indexTemplate(index, mappings string) string {
	return fmt.Sprintf(`{"index_patterns":[%q],"priority":200,"version":%d,`+
		`"_meta":{"managed_by":"batchaudit esstore"},`+
		`"template":{"settings":{"index":{"number_of_shards":1,"codec":"best_compression"}},`+
		`"aliases":{%q:{}},"mappings":%s}}`,
		index, templateVersion, WriteAlias(index), mappings)
}

// mappings returns index name → mappings.
func (c *Config) mappings() map[string]string {
	return map[string]string{
		c.eventsIndex():      eventsMapping,
		c.runsIndex():        runsMapping,
		c.deadLettersIndex(): deadLettersMapping,
		c.reportsIndex():     reportsMapping,
		c.tilesIndex():       tilesMapping,
		c.checkpointsIndex(): checkpointsMapping,
	}
}

// installTemplates puts one template per index (named like the index),
// creates the indices, and gives each its write alias once its mapping is
// checked, so that reads work before the first write and no index is ever
// created from a dynamic mapping (guard.go).
func (s *Store) installTemplates(ctx context.Context) error {
	for index, mapping := range s.cfg.mappings() {
		body := indexTemplate(index, mapping)
		status, resp, err := s.perform(ctx, "put index template "+index, func() esapi.Request {
			return esapi.IndicesPutIndexTemplateRequest{Name: index, Body: strings.NewReader(body)}
		})
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			return statusError("put index template "+index, status, resp)
		}
		status, resp, err = s.perform(ctx, "create index "+index, func() esapi.Request {
			return esapi.IndicesCreateRequest{Index: index}
		})
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			if t, _ := errorOf(resp); t != "resource_already_exists_exception" {
				return statusError("create index "+index, status, resp)
			}
			// An existing index gets the mapping too, so fields added by a
			// newer version are indexed there as well (additions only: a
			// changed field type fails here, loudly).
			status, resp, err = s.perform(ctx, "put mapping "+index, func() esapi.Request {
				return esapi.IndicesPutMappingRequest{Index: []string{index}, Body: strings.NewReader(mapping)}
			})
			if err != nil {
				return err
			}
			if status != http.StatusOK {
				// The index holds fields of other types: not ours, and
				// retrying cannot change that.
				return consumererror.NewPermanent(fmt.Errorf("%w (index %s was not created by batchaudit; "+
					"the collector will not write into it)", statusError("put mapping "+index, status, resp), index))
			}
		}
		// Also for a new index: a template of higher priority may have
		// given it another mapping.
		if err := s.ensureAlias(ctx, index); err != nil {
			return err
		}
	}
	return nil
}

// errorOf extracts Elasticsearch's error type and reason from a response.
func errorOf(body []byte) (typ, reason string) {
	var r struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &r) != nil || len(r.Error) == 0 {
		return "", ""
	}
	var e struct {
		Type   string `json:"type"`
		Reason string `json:"reason"`
	}
	if bytes.HasPrefix(bytes.TrimSpace(r.Error), []byte(`"`)) {
		var s string
		_ = json.Unmarshal(r.Error, &s)
		return "error", s
	}
	_ = json.Unmarshal(r.Error, &e)
	return e.Type, e.Reason
}
