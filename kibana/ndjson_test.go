package kibana

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCommittedNDJSONIsCurrent fails when kibana/batchaudit.ndjson is not
// what the Go definitions produce: run `go generate ./kibana`.
func TestCommittedNDJSONIsCurrent(t *testing.T) {
	want, err := NDJSON(DefaultPrefix)
	require.NoError(t, err)
	got, err := os.ReadFile(CommittedFile)
	require.NoError(t, err)
	if !bytes.Equal(want, got) {
		t.Fatalf("%s is stale: run `go generate ./kibana` and commit the result", CommittedFile)
	}
}

var (
	semver       = regexp.MustCompile(`^\d+\.\d+\.\d+$`)
	objectID     = regexp.MustCompile(`^batchaudit-[a-z0-9-]+$`)
	knownTypes   = map[string]bool{"index-pattern": true, "search": true, "visualization": true, "dashboard": true}
	visSchemas   = map[string]map[string]bool{"histogram": {"metric": true, "segment": true, "group": true, "split": true}, "table": {"metric": true, "bucket": true, "split": true}, "metric": {"metric": true, "group": true}}
	jsonAttrs    = map[string][]string{"index-pattern": {"fields", "fieldFormatMap", "fieldAttrs", "runtimeFieldMap", "sourceFilters", "typeMeta"}, "visualization": {"visState", "uiStateJSON"}, "dashboard": {"panelsJSON", "optionsJSON"}}
	gridColumns  = 48
	maxExportObj = 10000 // Kibana's default savedObjects.maxImportExportSize
)

type parsedObject struct {
	Attributes           map[string]any `json:"attributes"`
	CoreMigrationVersion string         `json:"coreMigrationVersion"`
	ID                   string         `json:"id"`
	Managed              *bool          `json:"managed"`
	References           []reference    `json:"references"`
	Type                 string         `json:"type"`
	TypeMigrationVersion string         `json:"typeMigrationVersion"`
}

// parseNDJSON reads an export: objects, then the summary line.
func parseNDJSON(t *testing.T, b []byte) ([]parsedObject, map[string]any) {
	t.Helper()
	require.True(t, bytes.HasSuffix(b, []byte("\n")), "every line ends with a newline, the last one too")
	var objs []parsedObject
	var details map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		require.NotEmpty(t, line, "no empty lines")
		require.Nil(t, details, "the export summary is the last line")
		var probe map[string]any
		require.NoError(t, json.Unmarshal(line, &probe), "each line is one JSON object: %s", line)
		if _, ok := probe["exportedCount"]; ok {
			details = probe
			continue
		}
		var o parsedObject
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		require.NoError(t, dec.Decode(&o), "object envelope: %s", line)
		objs = append(objs, o)
	}
	require.NoError(t, sc.Err())
	require.NotNil(t, details, "an export ends with its summary line")
	return objs, details
}

// decodeString parses a JSON attribute that Kibana keeps as a string.
func decodeString(t *testing.T, o parsedObject, v any, path ...string) {
	t.Helper()
	var cur any = o.Attributes
	for _, p := range path {
		m, ok := cur.(map[string]any)
		require.True(t, ok, "%s %s: %s is not an object", o.Type, o.ID, strings.Join(path, "."))
		cur = m[p]
	}
	s, ok := cur.(string)
	require.True(t, ok, "%s %s: %s must be a JSON string", o.Type, o.ID, strings.Join(path, "."))
	require.NoError(t, json.Unmarshal([]byte(s), v), "%s %s: %s", o.Type, o.ID, strings.Join(path, "."))
}

// TestNDJSONStructure checks the committed file against the saved objects
// export format: envelope fields, migration versions, references that
// resolve within the file, and the JSON kept in string attributes.
func TestNDJSONStructure(t *testing.T) {
	b, err := os.ReadFile(CommittedFile)
	require.NoError(t, err)
	objs, details := parseNDJSON(t, b)
	require.NotEmpty(t, objs)
	assert.LessOrEqual(t, len(objs), maxExportObj)
	assert.Equal(t, float64(len(objs)), details["exportedCount"])
	assert.Equal(t, float64(0), details["missingRefCount"])
	assert.Equal(t, []any{}, details["missingReferences"])

	byKey := map[string]parsedObject{}
	counts := map[string]int{}
	for _, o := range objs {
		key := o.Type + "/" + o.ID
		require.NotContains(t, byKey, key, "duplicate object %s", key)
		assert.True(t, knownTypes[o.Type], "%s: type", key)
		assert.Regexp(t, objectID, o.ID, "%s: stable, readable id", key)
		assert.Regexp(t, semver, o.CoreMigrationVersion, "%s: coreMigrationVersion", key)
		assert.Regexp(t, semver, o.TypeMigrationVersion, "%s: typeMigrationVersion", key)
		require.NotNil(t, o.Managed, "%s: managed", key)
		assert.False(t, *o.Managed, "%s: users may edit the objects", key)
		require.NotNil(t, o.Attributes, "%s: attributes", key)
		title, _ := o.Attributes["title"].(string)
		assert.NotEmpty(t, title, "%s: title", key)
		names := map[string]bool{}
		for _, r := range o.References {
			assert.False(t, names[r.Name], "%s: reference name %s used twice", key, r.Name)
			names[r.Name] = true
			_, ok := byKey[r.Type+"/"+r.ID]
			assert.True(t, ok, "%s: reference %s -> %s/%s resolves to an object earlier in the file", key, r.Name, r.Type, r.ID)
		}
		for _, attr := range jsonAttrs[o.Type] {
			var v any
			decodeString(t, o, &v, attr)
		}
		switch o.Type {
		case "index-pattern":
			assert.NotEmpty(t, o.Attributes["timeFieldName"], "%s: time field", key)
			assert.Empty(t, o.References)
		case "search", "visualization":
			checkSearchSource(t, o, true)
		case "dashboard":
			checkSearchSource(t, o, false)
			checkPanels(t, o)
			assert.Equal(t, true, o.Attributes["timeRestore"], "%s: the dashboard restores its time range", key)
		}
		if o.Type == "visualization" {
			checkVisState(t, o, title)
		}
		byKey[key] = o
		counts[o.Type]++
	}
	assert.Equal(t, map[string]int{"index-pattern": len(dataViews), "search": len(searches),
		"visualization": len(visualizations), "dashboard": len(dashboards)}, counts)
	for _, want := range []string{"batchaudit: Audit overview", "batchaudit: Data changes",
		"batchaudit: Data loss & integrity", "batchaudit: Run detail (replace BATCH_ID)"} {
		found := false
		for _, o := range objs {
			found = found || (o.Type == "dashboard" && o.Attributes["title"] == want)
		}
		assert.True(t, found, "dashboard %q", want)
	}
}

func checkSearchSource(t *testing.T, o parsedObject, withIndex bool) {
	t.Helper()
	var src struct {
		Query struct {
			Query    *string `json:"query"`
			Language string  `json:"language"`
		} `json:"query"`
		Filter       []any  `json:"filter"`
		IndexRefName string `json:"indexRefName"`
	}
	decodeString(t, o, &src, "kibanaSavedObjectMeta", "searchSourceJSON")
	require.NotNil(t, src.Query.Query, "%s %s: query", o.Type, o.ID)
	assert.Equal(t, "lucene", src.Query.Language, "%s %s: Lucene queries run unchanged in Elasticsearch", o.Type, o.ID)
	assert.NotNil(t, src.Filter, "%s %s: filter list", o.Type, o.ID)
	if !withIndex {
		assert.Empty(t, src.IndexRefName)
		return
	}
	require.Equal(t, indexRefName, src.IndexRefName, "%s %s", o.Type, o.ID)
	found := false
	for _, r := range o.References {
		if r.Name == src.IndexRefName {
			found = true
			assert.Equal(t, "index-pattern", r.Type, "%s %s: the index reference names a data view", o.Type, o.ID)
		}
	}
	assert.True(t, found, "%s %s: indexRefName %s has a reference", o.Type, o.ID, src.IndexRefName)
}

func checkVisState(t *testing.T, o parsedObject, title string) {
	t.Helper()
	var st struct {
		Title string `json:"title"`
		Type  string `json:"type"`
		Aggs  []struct {
			ID      string         `json:"id"`
			Enabled bool           `json:"enabled"`
			Type    string         `json:"type"`
			Schema  string         `json:"schema"`
			Params  map[string]any `json:"params"`
		} `json:"aggs"`
		Params map[string]any `json:"params"`
	}
	decodeString(t, o, &st, "visState")
	assert.Equal(t, title, st.Title, "%s: visState title", o.ID)
	schemas, ok := visSchemas[st.Type]
	require.True(t, ok, "%s: visualization type %q", o.ID, st.Type)
	ids := map[string]string{}
	metrics := 0
	for _, a := range st.Aggs {
		assert.NotContains(t, ids, a.ID, "%s: agg id %s used twice", o.ID, a.ID)
		ids[a.ID] = a.Schema
		assert.True(t, a.Enabled, "%s: agg %s enabled", o.ID, a.ID)
		assert.True(t, schemas[a.Schema], "%s: agg %s schema %q fits a %s", o.ID, a.ID, a.Schema, st.Type)
		if a.Schema == "metric" {
			metrics++
		}
	}
	assert.Positive(t, metrics, "%s: at least one metric", o.ID)
	for _, a := range st.Aggs {
		if a.Type == "terms" {
			assert.Equal(t, "metric", ids[fmt.Sprint(a.Params["orderBy"])], "%s: terms %s orders by a metric", o.ID, a.ID)
		}
		if a.Schema != "metric" {
			assert.NotEmpty(t, a.Params["field"], "%s: bucket agg %s has a field", o.ID, a.ID)
		}
	}
	assert.NotEmpty(t, st.Params, "%s: params", o.ID)
}

func checkPanels(t *testing.T, o parsedObject) {
	t.Helper()
	var panels []struct {
		Version  string `json:"version"`
		Type     string `json:"type"`
		GridData struct {
			X, Y, W, H int
			I          string
		} `json:"gridData"`
		PanelIndex   string `json:"panelIndex"`
		PanelRefName string `json:"panelRefName"`
	}
	decodeString(t, o, &panels, "panelsJSON")
	require.NotEmpty(t, panels, "%s: panels", o.ID)
	used := map[[2]int]string{}
	for _, p := range panels {
		assert.Regexp(t, semver, p.Version, "%s: panel version", o.ID)
		assert.Equal(t, p.PanelIndex, p.GridData.I, "%s: panelIndex is the grid item id", o.ID)
		var ref *reference
		for i := range o.References {
			if o.References[i].Name == p.PanelIndex+":"+p.PanelRefName {
				ref = &o.References[i]
			}
		}
		if assert.NotNil(t, ref, "%s: panel %s has its reference %s:%s", o.ID, p.PanelIndex, p.PanelIndex, p.PanelRefName) {
			assert.Equal(t, p.Type, ref.Type, "%s: panel %s type", o.ID, p.PanelIndex)
		}
		g := p.GridData
		assert.True(t, g.X >= 0 && g.W > 0 && g.X+g.W <= gridColumns && g.Y >= 0 && g.H > 0,
			"%s: panel %s fits the %d-column grid: %+v", o.ID, p.PanelIndex, gridColumns, g)
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := used[[2]int{x, y}]; ok {
					t.Errorf("%s: panels %s and %s overlap at %d,%d", o.ID, other, p.PanelIndex, x, y)
					return
				}
				used[[2]int{x, y}] = p.PanelIndex
			}
		}
	}
}

// TestNDJSONForOtherPrefix: another index prefix changes only the data
// views' index names; ids stay, so a re-import still overwrites.
func TestNDJSONForOtherPrefix(t *testing.T) {
	def, err := NDJSON(DefaultPrefix)
	require.NoError(t, err)
	other, err := NDJSON("acme-audit")
	require.NoError(t, err)
	defObjs, _ := parseNDJSON(t, def)
	otherObjs, _ := parseNDJSON(t, other)
	require.Len(t, otherObjs, len(defObjs))
	for i := range defObjs {
		a, b := defObjs[i], otherObjs[i]
		assert.Equal(t, a.ID, b.ID)
		if a.Type == "index-pattern" {
			assert.Equal(t, strings.Replace(a.Attributes["title"].(string), DefaultPrefix, "acme-audit", 1), b.Attributes["title"])
			continue
		}
		assert.Equal(t, a, b, "%s %s does not depend on the prefix", a.Type, a.ID)
	}
	_, err = NDJSON("")
	assert.Error(t, err)
}
