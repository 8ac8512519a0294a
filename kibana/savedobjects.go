package kibana

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Migration versions written into every object: Kibana migrates an object
// from the version it declares, so each declares a version whose shape we
// write, as Kibana 8.8 exports them. Kibana refuses objects that declare a
// newer version than it knows, so the file imports into 8.8 and later.
const (
	coreMigrationVersion = "8.8.0"
	panelVersion         = "8.8.0"
)

var typeMigrationVersion = map[string]string{
	"index-pattern": "8.0.0",
	"search":        "8.0.0",
	"visualization": "8.5.0",
	"dashboard":     "8.7.0",
}

// dataView is a Kibana data view (saved-object type index-pattern) on one
// index of the trail.
type dataView struct {
	id, name  string
	index     func(prefix string) string
	timeField string
	formats   map[string]fieldFormat
	// popular are the fields people look at first, most popular first:
	// Discover lists them at the top of the field list.
	popular []string
}

type fieldFormat struct {
	ID     string         `json:"id"`
	Params map[string]any `json:"params,omitempty"`
}

// query is a conjunction of clauses. It is written in Lucene query syntax,
// which Kibana passes to Elasticsearch unchanged in a query_string query, so
// the tests can run exactly what Kibana runs (KQL is translated by Kibana
// itself).
type query []clause

// clause matches a field equal to any of the values (not: to none of them).
type clause struct {
	field  string
	values []string
	not    bool
}

func where(field string, values ...string) query { return query{{field: field, values: values}} }

// whereNot also matches documents without the field (written before it).
func whereNot(field string, values ...string) query {
	return query{{field: field, values: values, not: true}}
}

// and adds a clause to a copy of q.
func (q query) and(other query) query { return append(append(query{}, q...), other...) }

// lucene renders q; values are phrases, so any character is literal.
func (q query) lucene() string {
	parts := make([]string, len(q))
	for i, c := range q {
		vals := make([]string, len(c.values))
		for j, v := range c.values {
			vals[j] = quotePhrase(v)
		}
		if len(vals) == 1 {
			parts[i] = c.field + ":" + vals[0]
		} else {
			parts[i] = c.field + ":(" + strings.Join(vals, " OR ") + ")"
		}
		if c.not {
			parts[i] = "NOT " + parts[i]
		}
	}
	return strings.Join(parts, " AND ")
}

// quotePhrase writes a Lucene phrase: inside quotes only " and \ are special.
func quotePhrase(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(v) + `"`
}

// fill replaces placeholder values (e.g. RECORD_ID) in a copy of q.
func (q query) fill(values map[string]string) query {
	out := make(query, len(q))
	for i, c := range q {
		vals := make([]string, len(c.values))
		for j, v := range c.values {
			if f, ok := values[v]; ok {
				v = f
			}
			vals[j] = v
		}
		out[i] = clause{field: c.field, values: vals, not: c.not}
	}
	return out
}

type sortField struct{ field, order string }

// search is a saved Discover search.
type search struct {
	id, title, description string
	view                   *dataView
	query                  query
	columns                []string
	sort                   []sortField
}

// visKind is a legacy (aggregation-based) visualization type.
type visKind string

const (
	histogram visKind = "histogram" // vertical bars
	table     visKind = "table"
	metric    visKind = "metric"
)

// Aggregation schemas: the role of a bucket aggregation in its visualization.
const (
	bucket = "bucket" // table: split rows
	group  = "group"  // histogram: split series
	split  = "split"  // histogram: split chart (one chart per bucket)
)

// agg is one aggregation of a visualization, as Kibana's agg configs hold it.
type agg struct {
	typ      string // count, sum, max, terms, date_histogram
	schema   string // metric, segment, group, split, bucket
	field    string
	size     int    // terms: how many buckets (ordered by count, descending)
	interval string // date_histogram: Kibana interval, "d" = one calendar day
	label    string // metrics: the column/series label
}

func count(label string) agg { return agg{typ: "count", schema: "metric", label: label} }
func sum(field, label string) agg {
	return agg{typ: "sum", schema: "metric", field: field, label: label}
}

// maxOf is the largest value of a number or date field (a date shows as a
// date).
func maxOf(field, label string) agg {
	return agg{typ: "max", schema: "metric", field: field, label: label}
}
func terms(schema, field string, size int) agg {
	return agg{typ: "terms", schema: schema, field: field, size: size}
}
func perDay(field string) agg {
	return agg{typ: "date_histogram", schema: "segment", field: field, interval: "d"}
}

func (a agg) isMetric() bool { return a.schema == "metric" }

// vis is a saved legacy visualization.
type vis struct {
	id, title, description string
	view                   *dataView
	kind                   visKind
	query                  query
	aggs                   []agg
}

// dashboard is a saved dashboard; its query and time range apply to every
// panel.
type dashboard struct {
	id, title, description string
	query                  query
	from, to               string // Kibana time, restored when the dashboard opens
	panels                 []panel
}

// panel places a saved search or visualization on a dashboard.
type panel struct {
	obj        embeddable
	x, y, w, h int
}

// embeddable is what a dashboard panel can show.
type embeddable interface {
	ref() (typ, id string)
}

func (s *search) ref() (string, string) { return "search", s.id }
func (v *vis) ref() (string, string)    { return "visualization", v.id }

// savedObject is one line of the export format. Fields are in alphabetical
// order, as Kibana's exports write them.
type savedObject struct {
	Attributes           any         `json:"attributes"`
	CoreMigrationVersion string      `json:"coreMigrationVersion"`
	ID                   string      `json:"id"`
	Managed              bool        `json:"managed"`
	References           []reference `json:"references"`
	Type                 string      `json:"type"`
	TypeMigrationVersion string      `json:"typeMigrationVersion"`
}

type reference struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Type string `json:"type"`
}

// exportDetails is the summary line that closes an export; the import API
// skips it.
type exportDetails struct {
	ExcludedObjects      []any `json:"excludedObjects"`
	ExcludedObjectsCount int   `json:"excludedObjectsCount"`
	ExportedCount        int   `json:"exportedCount"`
	MissingRefCount      int   `json:"missingRefCount"`
	MissingReferences    []any `json:"missingReferences"`
}

const indexRefName = "kibanaSavedObjectMeta.searchSourceJSON.index"

func newObject(typ, id string, attrs any, refs []reference) savedObject {
	if refs == nil {
		refs = []reference{}
	}
	return savedObject{Attributes: attrs, CoreMigrationVersion: coreMigrationVersion, ID: id, References: refs,
		Type: typ, TypeMigrationVersion: typeMigrationVersion[typ]}
}

// jsonString encodes v as the JSON text that Kibana keeps in string
// attributes (visState, panelsJSON, searchSourceJSON, ...).
func jsonString(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("kibana: encoding %T: %v", v, err)) // only static, encodable values get here
	}
	return strings.TrimSuffix(b.String(), "\n")
}

type searchSource struct {
	Query        luceneQuery `json:"query"`
	Filter       []any       `json:"filter"`
	IndexRefName string      `json:"indexRefName,omitempty"`
}

type luceneQuery struct {
	Query    string `json:"query"`
	Language string `json:"language"`
}

func sourceJSON(q query, withIndex bool) map[string]string {
	s := searchSource{Query: luceneQuery{q.lucene(), "lucene"}, Filter: []any{}}
	if withIndex {
		s.IndexRefName = indexRefName
	}
	return map[string]string{"searchSourceJSON": jsonString(s)}
}

func (d *dataView) object(prefix string) savedObject {
	attrs := map[string]any{}
	for i, field := range d.popular {
		attrs[field] = map[string]int{"count": len(d.popular) - i}
	}
	return newObject("index-pattern", d.id, map[string]any{
		"title": d.index(prefix), "name": d.name, "timeFieldName": d.timeField,
		"fields": "[]", "fieldFormatMap": jsonString(d.formats), "fieldAttrs": jsonString(attrs),
		"runtimeFieldMap": "{}", "sourceFilters": "[]", "typeMeta": "{}",
	}, nil)
}

func viewRef(d *dataView) []reference {
	return []reference{{ID: d.id, Name: indexRefName, Type: "index-pattern"}}
}

func (s *search) object() savedObject {
	sort := make([][]string, len(s.sort))
	for i, f := range s.sort {
		sort[i] = []string{f.field, f.order}
	}
	return newObject("search", s.id, map[string]any{
		"title": s.title, "description": s.description, "columns": s.columns, "sort": sort,
		"grid": map[string]any{}, "hideChart": false, "isTextBasedQuery": false,
		"kibanaSavedObjectMeta": sourceJSON(s.query, true),
	}, viewRef(s.view))
}

type aggConfig struct {
	ID      string         `json:"id"`
	Enabled bool           `json:"enabled"`
	Type    string         `json:"type"`
	Params  map[string]any `json:"params"`
	Schema  string         `json:"schema"`
}

// aggID numbers aggregations from 1 in their order, as Kibana's editor does;
// "1" is the count that terms aggregations order by.
func aggID(i int) string { return fmt.Sprint(i + 1) }

func (v *vis) aggConfigs() []aggConfig {
	out := make([]aggConfig, len(v.aggs))
	for i, a := range v.aggs {
		p := map[string]any{}
		switch a.typ {
		case "count":
			p["emptyAsNull"] = false
		case "sum":
			p["field"], p["emptyAsNull"] = a.field, false
		case "max":
			p["field"] = a.field
		case "terms":
			p["field"], p["size"], p["orderBy"], p["order"] = a.field, a.size, aggID(v.countIndex()), "desc"
			p["otherBucket"], p["otherBucketLabel"] = false, "Other"
			p["missingBucket"], p["missingBucketLabel"] = false, "Missing"
		case "date_histogram":
			p["field"], p["interval"], p["useNormalizedEsInterval"] = a.field, a.interval, true
			p["scaleMetricValues"], p["drop_partials"], p["min_doc_count"] = false, false, 1
			p["extended_bounds"], p["extendToTimeRange"] = map[string]any{}, false
		}
		if a.schema == split {
			p["row"] = true // one chart per bucket, stacked in rows
		}
		if a.label != "" {
			p["customLabel"] = a.label
		}
		out[i] = aggConfig{ID: aggID(i), Enabled: true, Type: a.typ, Params: p, Schema: a.schema}
	}
	return out
}

// countIndex is the position of the count metric, which terms
// aggregations order by; every visualization has one.
func (v *vis) countIndex() int {
	for i, a := range v.aggs {
		if a.typ == "count" {
			return i
		}
	}
	panic("kibana: visualization " + v.id + " has no count metric")
}

// params are the visualization type's display settings, as Kibana's editor
// saves them for a new visualization of that type.
func (v *vis) params() map[string]any {
	switch v.kind {
	case histogram:
		label := v.aggs[v.countIndex()].label
		return map[string]any{
			"type": "histogram", "addTooltip": true, "addLegend": true, "legendPosition": "right",
			"times": []any{}, "addTimeMarker": false, "labels": map[string]any{"show": false},
			"grid": map[string]any{"categoryLines": false},
			"categoryAxes": []any{map[string]any{"id": "CategoryAxis-1", "type": "category", "position": "bottom",
				"show": true, "style": map[string]any{}, "scale": map[string]any{"type": "linear"},
				"labels": map[string]any{"show": true, "filter": true, "truncate": 100}, "title": map[string]any{}}},
			"valueAxes": []any{map[string]any{"id": "ValueAxis-1", "name": "LeftAxis-1", "type": "value",
				"position": "left", "show": true, "style": map[string]any{},
				"scale":  map[string]any{"type": "linear", "mode": "normal"},
				"labels": map[string]any{"show": true, "rotate": 0, "filter": false, "truncate": 100},
				"title":  map[string]any{"text": label}}},
			"seriesParams": []any{map[string]any{"show": true, "type": "histogram", "mode": "stacked",
				"data": map[string]any{"label": label, "id": aggID(v.countIndex())}, "valueAxis": "ValueAxis-1",
				"drawLinesBetweenPoints": true, "lineWidth": 2, "showCircles": true}},
			"thresholdLine": map[string]any{"show": false, "value": 10, "width": 1, "style": "full", "color": "#E7664C"},
		}
	case table:
		return map[string]any{"perPage": 10, "showPartialRows": false, "showMetricsAtAllLevels": false,
			"showTotal": false, "totalFunc": "sum", "percentageCol": ""}
	case metric:
		return map[string]any{"addTooltip": true, "addLegend": false, "type": "metric",
			"metric": map[string]any{"percentageMode": false, "useRanges": false, "colorSchema": "Green to Red",
				"metricColorMode": "None", "colorsRange": []any{map[string]any{"from": 0, "to": 10000}},
				"labels": map[string]any{"show": true}, "invertColors": false,
				"style": map[string]any{"bgFill": "#000", "bgColor": false, "labelColor": false, "subText": "",
					"fontSize": 60}}}
	}
	panic("kibana: unknown visualization kind " + string(v.kind))
}

func (v *vis) object() savedObject {
	state := map[string]any{"title": v.title, "type": string(v.kind), "aggs": v.aggConfigs(), "params": v.params()}
	return newObject("visualization", v.id, map[string]any{
		"title": v.title, "description": v.description, "visState": jsonString(state), "uiStateJSON": "{}",
		"version": 1, "kibanaSavedObjectMeta": sourceJSON(v.query, true),
	}, viewRef(v.view))
}

type gridData struct {
	X int    `json:"x"`
	Y int    `json:"y"`
	W int    `json:"w"`
	H int    `json:"h"`
	I string `json:"i"`
}

type savedPanel struct {
	Version          string         `json:"version"`
	Type             string         `json:"type"`
	GridData         gridData       `json:"gridData"`
	PanelIndex       string         `json:"panelIndex"`
	EmbeddableConfig map[string]any `json:"embeddableConfig"`
	PanelRefName     string         `json:"panelRefName"`
}

func (d *dashboard) object() savedObject {
	panels := make([]savedPanel, len(d.panels))
	refs := make([]reference, len(d.panels))
	for i, p := range d.panels {
		typ, id := p.obj.ref()
		idx := fmt.Sprint(i + 1)
		// Kibana names a panel's reference "<panelIndex>:panel_<panelIndex>".
		refName := "panel_" + idx
		panels[i] = savedPanel{Version: panelVersion, Type: typ, GridData: gridData{p.x, p.y, p.w, p.h, idx},
			PanelIndex: idx, EmbeddableConfig: map[string]any{"enhancements": map[string]any{}}, PanelRefName: refName}
		refs[i] = reference{ID: id, Name: idx + ":" + refName, Type: typ}
	}
	return newObject("dashboard", d.id, map[string]any{
		"title": d.title, "description": d.description, "panelsJSON": jsonString(panels),
		"optionsJSON": jsonString(map[string]any{"useMargins": true, "syncColors": false, "syncCursor": true,
			"syncTooltips": false, "hidePanelTitles": false}),
		"timeRestore": true, "timeFrom": d.from, "timeTo": d.to,
		"refreshInterval": map[string]any{"pause": true, "value": 0}, "version": 1,
		"kibanaSavedObjectMeta": sourceJSON(d.query, false),
	}, refs)
}

// objects returns every saved object for the trail with index prefix
// prefix, referenced objects before the objects that reference them.
func objects(prefix string) []savedObject {
	var out []savedObject
	for _, d := range dataViews {
		out = append(out, d.object(prefix))
	}
	for _, s := range searches {
		out = append(out, s.object())
	}
	for _, v := range visualizations {
		out = append(out, v.object())
	}
	for _, d := range dashboards {
		out = append(out, d.object())
	}
	return out
}

// NDJSON returns the saved objects in the format of Kibana's saved objects
// export API (one object per line, then the export summary line), with data
// views on the indices of the given index prefix.
func NDJSON(prefix string) ([]byte, error) {
	if prefix == "" {
		return nil, fmt.Errorf("kibana: empty index prefix")
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	objs := objects(prefix)
	for _, o := range objs {
		if err := enc.Encode(o); err != nil {
			return nil, fmt.Errorf("kibana: encoding %s %s: %w", o.Type, o.ID, err)
		}
	}
	if err := enc.Encode(exportDetails{ExcludedObjects: []any{}, ExportedCount: len(objs),
		MissingReferences: []any{}}); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
