package kibana

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// kibanaStandIn is a local HTTP STAND-IN for Kibana's saved objects import
// API, because Kibana itself cannot be installed on these machines (it is
// not published to any registry reachable here). It checks each request the
// way Kibana's API documentation and its route handler describe it and
// answers in the documented format; what Kibana then does with the objects
// is not tested here (the objects' queries are tested against the real
// Elasticsearch node in testbed/kibana_test.go).
//
// Documented request: POST <kibana>[/s/<space_id>]/api/saved_objects/_import,
// query parameter overwrite (boolean; createNewCopies excludes it), header
// kbn-xsrf (required), body multipart/form-data with the NDJSON in the field
// "file" (Kibana answers 400 "Invalid file extension" unless the file name
// ends in .ndjson). Answer: 200 {"success", "successCount",
// "successResults": [{"type","id","meta":{...}}], "errors": [...]}; without
// overwrite an existing object is a "conflict" error.
type kibanaStandIn struct {
	t        *testing.T
	basePath string
	auth     func(*http.Request) bool

	mu       sync.Mutex
	stored   map[string]map[string]json.RawMessage // space -> type/id -> object
	requests int
	failWith func(w http.ResponseWriter) bool // fault injection for error paths
}

func newStandIn(t *testing.T, basePath string, auth func(*http.Request) bool) (*kibanaStandIn, *httptest.Server) {
	k := &kibanaStandIn{t: t, basePath: basePath, auth: auth, stored: map[string]map[string]json.RawMessage{}}
	srv := httptest.NewServer(k)
	t.Cleanup(srv.Close)
	return k, srv
}

func (k *kibanaStandIn) fail(w http.ResponseWriter, status int, format string, args ...any) {
	k.t.Errorf("stand-in: "+format, args...)
	http.Error(w, fmt.Sprintf(format, args...), status)
}

func (k *kibanaStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.requests++
	if k.failWith != nil && k.failWith(w) {
		return
	}
	path, ok := strings.CutPrefix(r.URL.Path, k.basePath)
	if !ok {
		k.fail(w, http.StatusNotFound, "path %s outside the base path %s", r.URL.Path, k.basePath)
		return
	}
	space := "default"
	if rest, ok := strings.CutPrefix(path, "/s/"); ok {
		space, path, _ = strings.Cut(rest, "/")
		path = "/" + path
	}
	if r.Method != http.MethodPost || path != "/api/saved_objects/_import" {
		k.fail(w, http.StatusNotFound, "%s %s: not the import API", r.Method, r.URL.Path)
		return
	}
	if got := r.URL.Query(); len(got) != 1 || got.Get("overwrite") != "true" {
		k.fail(w, http.StatusBadRequest, "query %q: want exactly overwrite=true", r.URL.RawQuery)
		return
	}
	if r.Header.Get("kbn-xsrf") == "" {
		// Kibana's own answer to a missing kbn-xsrf header.
		http.Error(w, `{"statusCode":400,"error":"Bad Request","message":"Request must contain a kbn-xsrf header."}`, http.StatusBadRequest)
		k.t.Errorf("stand-in: no kbn-xsrf header")
		return
	}
	if k.auth != nil && !k.auth(r) {
		http.Error(w, `{"statusCode":401,"error":"Unauthorized","message":"Unauthorized"}`, http.StatusUnauthorized)
		return
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		k.fail(w, http.StatusUnsupportedMediaType, "content type %q: want multipart/form-data with a boundary", r.Header.Get("Content-Type"))
		return
	}
	mr := multipart.NewReader(r.Body, params["boundary"])
	var file []byte
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			k.fail(w, http.StatusBadRequest, "multipart: %v", err)
			return
		}
		if p.FormName() != "file" {
			k.fail(w, http.StatusBadRequest, "unexpected form field %q", p.FormName())
			return
		}
		if file != nil {
			k.fail(w, http.StatusBadRequest, "two file fields")
			return
		}
		if !strings.HasSuffix(strings.ToLower(p.FileName()), ".ndjson") {
			http.Error(w, "Invalid file extension "+filepath.Ext(p.FileName()), http.StatusBadRequest)
			k.t.Errorf("stand-in: file name %q", p.FileName())
			return
		}
		file, _ = io.ReadAll(p)
	}
	if file == nil {
		k.fail(w, http.StatusBadRequest, "no file field")
		return
	}

	// Like Kibana: one object per non-empty line, the export summary line
	// skipped; with overwrite an existing object is replaced.
	if k.stored[space] == nil {
		k.stored[space] = map[string]json.RawMessage{}
	}
	var results []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(file))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var o struct {
			Type          string         `json:"type"`
			ID            string         `json:"id"`
			Attributes    map[string]any `json:"attributes"`
			ExportedCount *int           `json:"exportedCount"`
		}
		if err := json.Unmarshal(line, &o); err != nil {
			k.fail(w, http.StatusBadRequest, "bad NDJSON line: %v", err)
			return
		}
		if o.ExportedCount != nil {
			continue
		}
		result := map[string]any{"type": o.Type, "id": o.ID, "meta": map[string]any{"title": o.Attributes["title"]}, "overwrite": true}
		// These types' ids are unique across spaces (Kibana 8): a copy in
		// another space gets a new id, reported as destinationId.
		for other, objs := range k.stored {
			if _, taken := objs[o.Type+"/"+o.ID]; taken && other != space {
				result["destinationId"] = o.ID + "-in-" + space
			}
		}
		k.stored[space][o.Type+"/"+o.ID] = append(json.RawMessage{}, line...)
		results = append(results, result)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"success": true, "successCount": len(results), "successResults": results, "errors": []any{}})
}

// TestImportAgainstStandIn: the request is the one Kibana documents, and a
// second import replaces the objects instead of adding copies.
func TestImportAgainstStandIn(t *testing.T) {
	k, srv := newStandIn(t, "", func(r *http.Request) bool {
		u, p, ok := r.BasicAuth()
		return ok && u == "elastic" && p == "s3cret"
	})
	want, err := NDJSON(DefaultPrefix)
	require.NoError(t, err)
	n := len(objects(DefaultPrefix))

	for range 2 { // idempotent
		res, err := Import(context.Background(), ImportOptions{KibanaURL: srv.URL + "/", Space: "audit", Username: "elastic", Password: "s3cret"})
		require.NoError(t, err)
		assert.Equal(t, n, res.Objects)
		assert.Equal(t, n, res.SuccessCount)
		assert.Equal(t, srv.URL+"/s/audit", res.URL)
	}
	assert.Len(t, k.stored["audit"], n, "the second import overwrote, it did not add")
	assert.Empty(t, k.stored["default"])
	// What arrived is exactly the export file, object by object.
	lines := strings.Split(strings.TrimSpace(string(want)), "\n")
	for _, line := range lines[:len(lines)-1] {
		var o struct{ Type, ID string }
		require.NoError(t, json.Unmarshal([]byte(line), &o))
		assert.JSONEq(t, line, string(k.stored["audit"][o.Type+"/"+o.ID]))
	}

	res, err := Import(context.Background(), ImportOptions{KibanaURL: srv.URL, Space: "audit", Username: "elastic", Password: "s3cret"})
	require.NoError(t, err)
	require.Len(t, res.Dashboards, len(dashboards))
	assert.Equal(t, Link{"batchaudit: Audit overview", srv.URL + "/s/audit/app/dashboards#/view/batchaudit-dashboard-overview"},
		res.Dashboards[0])

	// The default space has no /s/ path; "default" means the same. The ids
	// are taken in space "audit", so Kibana gives these copies new ids, and
	// the links follow them.
	for _, space := range []string{"", "default"} {
		res, err := Import(context.Background(), ImportOptions{KibanaURL: srv.URL, Space: space, Username: "elastic", Password: "s3cret"})
		require.NoError(t, err)
		assert.Equal(t, Link{"batchaudit: Audit overview", srv.URL + "/app/dashboards#/view/batchaudit-dashboard-overview-in-default"},
			res.Dashboards[0])
	}
	assert.Len(t, k.stored["default"], n)
}

func TestImportAPIKeyAndBasePathAndPrefix(t *testing.T) {
	k, srv := newStandIn(t, "/kibana", func(r *http.Request) bool {
		return r.Header.Get("Authorization") == "ApiKey aWQ6a2V5"
	})
	_, err := Import(context.Background(), ImportOptions{KibanaURL: srv.URL + "/kibana", APIKey: "aWQ6a2V5",
		Username: "ignored", Password: "ignored", IndexPrefix: "acme"})
	require.NoError(t, err)
	var dv struct {
		Attributes struct {
			Title string `json:"title"`
		} `json:"attributes"`
	}
	require.NoError(t, json.Unmarshal(k.stored["default"]["index-pattern/batchaudit-events"], &dv))
	assert.Equal(t, "acme-events", dv.Attributes.Title, "data views on the trail's own indices")
}

func TestImportErrors(t *testing.T) {
	k, srv := newStandIn(t, "", func(r *http.Request) bool {
		u, p, ok := r.BasicAuth()
		return ok && u == "elastic" && p == "right"
	})
	_, err := Import(context.Background(), ImportOptions{KibanaURL: srv.URL, Username: "elastic", Password: "wrong"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "401")
	assert.Contains(t, err.Error(), "credentials")

	// Kibana answers 200 with success false and per-object errors.
	k.failWith = func(w http.ResponseWriter) bool {
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"success":false,"successCount":%d,`, len(objects(DefaultPrefix))-1)
		_, _ = io.WriteString(w, `"errors":[{"id":"batchaudit-events","type":"index-pattern","meta":{"title":"batchaudit events"},"error":{"type":"unsupported_type"}}]}`)
		return true
	}
	_, err = Import(context.Background(), ImportOptions{KibanaURL: srv.URL, Username: "elastic", Password: "right"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), fmt.Sprintf("%d of %d objects imported", len(objects(DefaultPrefix))-1, len(objects(DefaultPrefix))))
	assert.Contains(t, err.Error(), "index-pattern batchaudit-events (batchaudit events)")
	assert.Contains(t, err.Error(), "unsupported_type")

	k.failWith = func(w http.ResponseWriter) bool { http.NotFound(w, nil); return true }
	_, err = Import(context.Background(), ImportOptions{KibanaURL: srv.URL, Space: "nope"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "does the space exist")

	before := k.requests
	for _, o := range []ImportOptions{
		{KibanaURL: "kibana:5601"},
		{KibanaURL: "ftp://kibana"},
		{KibanaURL: srv.URL + "?x=1"},
		{KibanaURL: srv.URL, Space: "../api"},
		{KibanaURL: srv.URL, Space: "Audit"},
	} {
		_, err := Import(context.Background(), o)
		assert.Error(t, err, "%+v", o)
	}
	assert.Equal(t, before, k.requests, "bad options are refused before any request")
}

// TestImportTLSWithCA: an https Kibana with its own CA works with --ca and
// fails without it.
func TestImportTLSWithCA(t *testing.T) {
	k := &kibanaStandIn{t: t, stored: map[string]map[string]json.RawMessage{}}
	srv := httptest.NewTLSServer(k)
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600))

	_, err := Import(context.Background(), ImportOptions{KibanaURL: srv.URL})
	require.Error(t, err, "an unknown CA is refused")
	_, err = Import(context.Background(), ImportOptions{KibanaURL: srv.URL, CAFile: ca})
	require.NoError(t, err)
	_, err = Import(context.Background(), ImportOptions{KibanaURL: srv.URL, CAFile: filepath.Join(t.TempDir(), "missing.pem")})
	require.Error(t, err)
}
