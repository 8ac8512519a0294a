package kibana

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/batchaudit/batchaudit/internal/estest"
	"github.com/batchaudit/batchaudit/store/esstore"
)

// use is what a saved object needs a field for.
type use int

const (
	useTime      use = iota // a data view's time field: a date, aggregatable
	useQuery                // in a query: searchable
	useColumn               // a Discover column: present
	useSort                 // sorted on: aggregatable (doc values)
	useTerms                // terms buckets: aggregatable, not text
	useDateHisto            // date buckets: a date, aggregatable
	useSum                  // summed: numeric, aggregatable
	useMax                  // max: numeric or a date, aggregatable
	useNumberFmt            // number or duration format: numeric
	useStringFmt            // string format: keyword
	usePopular              // listed first in Discover: present
)

var useNames = []string{"time field", "query", "column", "sort", "terms", "date histogram", "sum", "max",
	"number format", "string format", "popularity"}

type fieldUse struct {
	view  *dataView
	field string
	use   use
	by    string // the object that uses it
}

// fieldUses lists every field every saved object refers to.
func fieldUses() []fieldUse {
	var out []fieldUse
	add := func(v *dataView, field string, u use, by string) { out = append(out, fieldUse{v, field, u, by}) }
	queryFields := func(v *dataView, q query, by string) {
		for _, c := range q {
			add(v, c.field, useQuery, by)
		}
	}
	for _, v := range dataViews {
		add(v, v.timeField, useTime, v.id)
		for f, ff := range v.formats {
			u := useNumberFmt
			if ff.ID == "string" {
				u = useStringFmt
			}
			add(v, f, u, v.id)
		}
		for _, f := range v.popular {
			add(v, f, usePopular, v.id)
		}
	}
	for _, s := range searches {
		queryFields(s.view, s.query, s.id)
		for _, c := range s.columns {
			add(s.view, c, useColumn, s.id)
		}
		for _, f := range s.sort {
			add(s.view, f.field, useSort, s.id)
		}
	}
	for _, v := range visualizations {
		queryFields(v.view, v.query, v.id)
		for _, a := range v.aggs {
			switch a.typ {
			case "terms":
				add(v.view, a.field, useTerms, v.id)
			case "date_histogram":
				add(v.view, a.field, useDateHisto, v.id)
			case "sum":
				add(v.view, a.field, useSum, v.id)
			case "max":
				add(v.view, a.field, useMax, v.id)
			}
		}
	}
	// A dashboard's query applies to every panel: its fields must exist in
	// every data view the panels read.
	for _, d := range dashboards {
		for _, p := range d.panels {
			switch o := p.obj.(type) {
			case *search:
				queryFields(o.view, d.query, d.id)
			case *vis:
				queryFields(o.view, d.query, d.id)
			}
		}
	}
	return out
}

type fieldCap struct {
	Type         string `json:"type"`
	Searchable   bool   `json:"searchable"`
	Aggregatable bool   `json:"aggregatable"`
}

var (
	dateTypes    = map[string]bool{"date": true, "date_nanos": true}
	numericTypes = map[string]bool{"long": true, "integer": true, "short": true, "byte": true, "double": true,
		"float": true, "half_float": true, "scaled_float": true, "unsigned_long": true}
)

func (u use) ok(c fieldCap) bool {
	switch u {
	case useTime, useDateHisto:
		return dateTypes[c.Type] && c.Aggregatable
	case useQuery:
		return c.Searchable
	case useSort:
		return c.Aggregatable
	case useTerms:
		return c.Aggregatable && c.Type != "text"
	case useSum:
		return numericTypes[c.Type] && c.Aggregatable
	case useMax:
		return (numericTypes[c.Type] || dateTypes[c.Type]) && c.Aggregatable
	case useNumberFmt:
		return numericTypes[c.Type]
	case useStringFmt:
		return c.Type == "keyword"
	}
	return true // present is enough
}

// TestFieldsExistInInstalledMapping installs the index templates on the
// real node (as the exporter does at start) and checks every field that a
// saved object uses against Elasticsearch's field capabilities, which is
// what Kibana's data views read: it exists, and has a type fit for its use.
// Renaming or retyping a field in store/esstore breaks this test.
func TestFieldsExistInInstalledMapping(t *testing.T) {
	client := estest.Require(t)
	prefix := estest.UniqueName(t, "kibana")
	estest.TrackStore(t, client, prefix+"-*", esstore.Indices(prefix)...) // the store names each template like its index
	cfg := esstore.NewDefaultConfig()
	cfg.Endpoints = []string{estest.URL()}
	cfg.IndexPrefix = prefix
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := esstore.New(ctx, cfg, zap.NewNop())
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })

	caps := map[string]map[string]fieldCap{} // index -> field -> capabilities
	for _, v := range dataViews {
		index := v.index(prefix)
		res, err := client.FieldCaps(client.FieldCaps.WithIndex(index), client.FieldCaps.WithFields("*"),
			client.FieldCaps.WithContext(ctx))
		require.NoError(t, err)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		require.False(t, res.IsError(), "field_caps %s: %s", index, body)
		var fc struct {
			Fields map[string]map[string]fieldCap `json:"fields"`
		}
		require.NoError(t, json.Unmarshal(body, &fc))
		caps[index] = map[string]fieldCap{}
		for name, byType := range fc.Fields {
			require.Len(t, byType, 1, "%s: one type per field in one index", name)
			for typ, c := range byType {
				c.Type = typ
				caps[index][name] = c
			}
		}
	}

	uses := fieldUses()
	require.NotEmpty(t, uses)
	for _, u := range uses {
		index := u.view.index(prefix)
		c, ok := caps[index][u.field]
		if !assert.True(t, ok, "%s: field %s (%s) is not in the mapping of %s", u.by, u.field, useNames[u.use], index) {
			continue
		}
		assert.True(t, u.use.ok(c), "%s: field %s of %s is %s (searchable %v, aggregatable %v): unfit for %s",
			u.by, u.field, index, c.Type, c.Searchable, c.Aggregatable, useNames[u.use])
	}

	// The placeholders are values, never field names.
	for _, u := range uses {
		assert.False(t, strings.Contains(u.field, "_ID"), "%s: %s", u.by, u.field)
	}
}
