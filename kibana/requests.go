package kibana

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Request is the Elasticsearch search that Kibana sends for one saved search
// or visualization, on its own or as a panel of a dashboard (whose query
// and time range then apply too). README.md ("How the queries are proven")
// says how each part of a saved object becomes part of the request.
type Request struct {
	Dashboard string // dashboard id; "" for a saved search on its own (no time range)
	Type, ID  string // the saved object: "search" or "visualization", and its id
	Index     string
	Body      []byte // the _search body
	vis       *vis
}

// Result is a response read the way Kibana presents it.
type Result struct {
	// Total is the number of matching documents.
	Total int64
	// Hits are the _id of the hits in the saved search's sort order.
	Hits []string
	// Rows are a visualization's values: the keys of the innermost buckets
	// (outer to inner; days as 2006-01-02 in UTC) and the metric's label,
	// joined by " | ", mapped to the metric's value.
	Rows map[string]float64
}

// searchSize is how many hits a saved search fetches: Discover's default
// sample size (setting discover:sampleSize).
const searchSize = 500

// timeZone is the time zone of date buckets. Kibana uses the browser's (or
// the dateFormat:tz setting); the requests here use UTC.
const timeZone = "UTC"

// Requests returns the request of every saved search on its own and of
// every panel of every dashboard, for the trail with index prefix prefix.
// fill maps placeholders (RecordIDPlaceholder, ...) to the values to search
// for; now resolves the dashboards' relative time ranges.
func Requests(prefix string, now time.Time, fill map[string]string) ([]Request, error) {
	var out []Request
	for _, s := range searches {
		out = append(out, searchRequest(prefix, "", s, []query{s.query.fill(fill)}, nil))
	}
	for _, d := range dashboards {
		from, err := resolveTime(d.from, now)
		if err != nil {
			return nil, fmt.Errorf("dashboard %s: %w", d.id, err)
		}
		to, err := resolveTime(d.to, now)
		if err != nil {
			return nil, fmt.Errorf("dashboard %s: %w", d.id, err)
		}
		tr := &timeRange{from, to}
		for _, p := range d.panels {
			switch o := p.obj.(type) {
			case *search:
				out = append(out, searchRequest(prefix, d.id, o, []query{o.query.fill(fill), d.query.fill(fill)}, tr))
			case *vis:
				out = append(out, visRequest(prefix, d.id, o, []query{o.query.fill(fill), d.query.fill(fill)}, tr))
			}
		}
	}
	return out, nil
}

type timeRange struct{ from, to time.Time }

// resolveTime turns Kibana's "now" and "now-<n><unit>" (unit m, h, d, y)
// into a time.
func resolveTime(s string, now time.Time) (time.Time, error) {
	if s == "now" {
		return now, nil
	}
	rest, ok := strings.CutPrefix(s, "now-")
	if !ok || len(rest) < 2 {
		return time.Time{}, fmt.Errorf("unsupported time %q", s)
	}
	n, err := strconv.Atoi(rest[:len(rest)-1])
	if err != nil {
		return time.Time{}, fmt.Errorf("unsupported time %q", s)
	}
	switch rest[len(rest)-1] {
	case 'm':
		return now.Add(-time.Duration(n) * time.Minute), nil
	case 'h':
		return now.Add(-time.Duration(n) * time.Hour), nil
	case 'd':
		return now.AddDate(0, 0, -n), nil
	case 'y':
		return now.AddDate(-n, 0, 0), nil
	}
	return time.Time{}, fmt.Errorf("unsupported time %q", s)
}

// boolQuery is the query Kibana builds from the search sources of a request
// (the object's, the dashboard's): each non-empty Lucene query as a
// query_string with Kibana's default query:queryString:options
// (analyze_wildcard), all of them required, and the time range as a range
// filter on the data view's time field.
func boolQuery(view *dataView, sources []query, tr *timeRange) map[string]any {
	var must, filter []any
	for _, q := range sources {
		if len(q) > 0 {
			must = append(must, map[string]any{"query_string": map[string]any{"query": q.lucene(), "analyze_wildcard": true}})
		}
	}
	if tr != nil {
		filter = append(filter, map[string]any{"range": map[string]any{view.timeField: map[string]any{
			"gte": tr.from.UTC().Format(time.RFC3339Nano), "lte": tr.to.UTC().Format(time.RFC3339Nano),
			"format": "strict_date_optional_time"}}})
	}
	if len(must) == 0 && len(filter) == 0 {
		return map[string]any{"match_all": map[string]any{}}
	}
	b := map[string]any{}
	if len(must) > 0 {
		b["must"] = must
	}
	if len(filter) > 0 {
		b["filter"] = filter
	}
	return map[string]any{"bool": b}
}

func searchRequest(prefix, dashboardID string, s *search, sources []query, tr *timeRange) Request {
	sortSpec := make([]any, len(s.sort))
	for i, f := range s.sort {
		sortSpec[i] = map[string]any{f.field: map[string]any{"order": f.order}}
	}
	body := map[string]any{"query": boolQuery(s.view, sources, tr), "sort": sortSpec, "size": searchSize,
		"track_total_hits": true}
	return Request{Dashboard: dashboardID, Type: "search", ID: s.id, Index: s.view.index(prefix), Body: mustJSON(body)}
}

// visRequest nests the bucket aggregations in their order and puts the
// metrics (other than count, which is each bucket's doc_count) at the
// innermost level: Kibana's request for a visualization with
// "showMetricsAtAllLevels" off.
func visRequest(prefix, dashboardID string, v *vis, sources []query, tr *timeRange) Request {
	metrics := map[string]any{}
	var buckets []int
	for i, a := range v.aggs {
		switch {
		case a.typ == "count":
		case a.isMetric():
			metrics[aggID(i)] = map[string]any{a.typ: map[string]any{"field": a.field}}
		default:
			buckets = append(buckets, i)
		}
	}
	inner := metrics
	for j := len(buckets) - 1; j >= 0; j-- {
		a := v.aggs[buckets[j]]
		var spec map[string]any
		switch a.typ {
		case "terms":
			spec = map[string]any{"terms": map[string]any{"field": a.field, "size": a.size,
				"order": map[string]any{"_count": "desc"}}}
		case "date_histogram":
			spec = map[string]any{"date_histogram": map[string]any{"field": a.field,
				"calendar_interval": "1" + a.interval, "time_zone": timeZone, "min_doc_count": 1}}
		default:
			panic("kibana: no request for aggregation " + a.typ)
		}
		if len(inner) > 0 {
			spec["aggs"] = inner
		}
		inner = map[string]any{aggID(buckets[j]): spec}
	}
	body := map[string]any{"query": boolQuery(v.view, sources, tr), "size": 0, "track_total_hits": true}
	if len(inner) > 0 {
		body["aggs"] = inner
	}
	return Request{Dashboard: dashboardID, Type: "visualization", ID: v.id, Index: v.view.index(prefix),
		Body: mustJSON(body), vis: v}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("kibana: encoding a request: %v", err)) // maps of strings and numbers only
	}
	return b
}

// Read reads the _search response of r.
func (r Request) Read(response []byte) (Result, error) {
	var resp struct {
		Hits struct {
			Total struct {
				Value int64 `json:"value"`
			} `json:"total"`
			Hits []struct {
				ID string `json:"_id"`
			} `json:"hits"`
		} `json:"hits"`
		Aggregations map[string]json.RawMessage `json:"aggregations"`
	}
	if err := json.Unmarshal(response, &resp); err != nil {
		return Result{}, fmt.Errorf("%s %s: reading the response: %w", r.Type, r.ID, err)
	}
	res := Result{Total: resp.Hits.Total.Value}
	if r.vis == nil {
		for _, h := range resp.Hits.Hits {
			res.Hits = append(res.Hits, h.ID)
		}
		return res, nil
	}
	res.Rows = map[string]float64{}
	top := map[string]json.RawMessage{}
	for k, v := range resp.Aggregations {
		top[k] = v
	}
	if err := r.vis.rows(top, float64(res.Total), nil, 0, res.Rows); err != nil {
		return Result{}, fmt.Errorf("%s %s: %w", r.Type, r.ID, err)
	}
	return res, nil
}

// rows walks the bucket aggregations from index i on (in order) and adds one
// row per metric and innermost bucket.
func (v *vis) rows(aggs map[string]json.RawMessage, docCount float64, keys []string, i int, out map[string]float64) error {
	for ; i < len(v.aggs) && v.aggs[i].isMetric(); i++ {
	}
	if i == len(v.aggs) {
		for j, a := range v.aggs {
			if !a.isMetric() {
				continue
			}
			val := docCount
			if a.typ != "count" {
				var m struct {
					Value *float64 `json:"value"`
				}
				if err := json.Unmarshal(aggs[aggID(j)], &m); err != nil {
					return fmt.Errorf("metric %s: %w", aggID(j), err)
				}
				if m.Value == nil {
					continue // no value (no documents): Kibana shows none
				}
				val = *m.Value
			}
			out[strings.Join(append(append([]string{}, keys...), a.label), " | ")] = val
		}
		return nil
	}
	var b struct {
		Buckets []map[string]json.RawMessage `json:"buckets"`
	}
	if err := json.Unmarshal(aggs[aggID(i)], &b); err != nil {
		return fmt.Errorf("aggregation %s: %w", aggID(i), err)
	}
	for _, bk := range b.Buckets {
		key, err := bucketKey(v.aggs[i], bk)
		if err != nil {
			return err
		}
		var n float64
		if err := json.Unmarshal(bk["doc_count"], &n); err != nil {
			return fmt.Errorf("aggregation %s: doc_count: %w", aggID(i), err)
		}
		if err := v.rows(bk, n, append(keys, key), i+1, out); err != nil {
			return err
		}
	}
	return nil
}

func bucketKey(a agg, bk map[string]json.RawMessage) (string, error) {
	if a.typ == "date_histogram" {
		var ms int64
		if err := json.Unmarshal(bk["key"], &ms); err != nil {
			return "", fmt.Errorf("date bucket key: %w", err)
		}
		return time.UnixMilli(ms).UTC().Format(time.DateOnly), nil
	}
	if s, ok := bk["key_as_string"]; ok { // booleans: "true"/"false"
		var k string
		err := json.Unmarshal(s, &k)
		return k, err
	}
	var k any
	if err := json.Unmarshal(bk["key"], &k); err != nil {
		return "", err
	}
	return fmt.Sprint(k), nil
}
