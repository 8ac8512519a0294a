// Package estest connects tests to the real Elasticsearch node that
// scripts/es.sh starts (make es-up) and removes what each test creates.
//
// Integration tests against Elasticsearch must never pass by not running:
// Require fails the test when the node is unreachable and skips only when
// BATCHAUDIT_SKIP_ES=1 is set on purpose, and says so loudly.
//
// Tests share one node, possibly from several packages at once, so every
// index, template or data stream a test creates gets a name from UniqueName
// and is registered for deletion with t.Cleanup (CreateIndex,
// PutIndexTemplate, TrackIndexTemplate, TrackIndex, TrackDataStream). Cleanups run in reverse
// order of registration, so register a template before the indices it
// matches: the indices are then deleted first.
//
// The test node is Elastic's integ-test distribution, which lacks most
// modules; see docs/elasticsearch.md for what does not work on it (notably
// GET / so client.Info and client.Ping fail, and data streams cannot be
// deleted).
package estest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"
)

const (
	// EnvURL overrides the node URL, e.g. for a node on another port.
	EnvURL = "BATCHAUDIT_ES_URL"
	// EnvSkip, set to "1", makes Require skip the test instead of failing
	// when no node is running. Meant for machines that cannot run Java.
	EnvSkip = "BATCHAUDIT_SKIP_ES"
	// DefaultURL is where scripts/es.sh starts the node by default.
	DefaultURL = "http://127.0.0.1:9200"

	requestTimeout = 30 * time.Second
)

// URL returns the node's URL: $BATCHAUDIT_ES_URL or DefaultURL.
func URL() string {
	if u := strings.TrimSpace(os.Getenv(EnvURL)); u != "" {
		return strings.TrimRight(u, "/")
	}
	return DefaultURL
}

// Require returns a client for the test node. It skips the test only when
// BATCHAUDIT_SKIP_ES=1, and fails it (never skips silently) when the node
// is not reachable or not at least yellow.
func Require(t testing.TB) *elasticsearch.Client {
	t.Helper()
	if os.Getenv(EnvSkip) == "1" {
		t.Skipf("SKIPPING Elasticsearch integration test because %s=1 is set: "+
			"this test did NOT run. Unset it and run `make es-up` to run it.", EnvSkip)
	}
	url := URL()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // the node is local; never route it through a proxy
	tr.ResponseHeaderTimeout = requestTimeout
	c, err := elasticsearch.NewClient(elasticsearch.Config{Addresses: []string{url}, Transport: tr})
	if err != nil {
		t.Fatalf("estest: creating an Elasticsearch client for %s: %v", url, err)
	}
	hint := fmt.Sprintf("Start the test node with `make es-up` (scripts/es.sh up), or point %s "+
		"at a running node; set %s=1 only to skip Elasticsearch tests on purpose.", EnvURL, EnvSkip)

	// GET /_cluster/health rather than Ping: the test node has no GET / handler.
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	res, err := c.Cluster.Health(
		c.Cluster.Health.WithContext(ctx),
		c.Cluster.Health.WithWaitForStatus("yellow"),
		c.Cluster.Health.WithTimeout(20*time.Second),
	)
	if err != nil {
		t.Fatalf("estest: Elasticsearch at %s is not reachable: %v\n%s", url, err, hint)
	}
	body := readBody(res)
	if res.IsError() {
		t.Fatalf("estest: Elasticsearch at %s is not healthy: %s %s\n%s", url, res.Status(), body, hint)
	}
	var health struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(body, &health); err != nil || (health.Status != "green" && health.Status != "yellow") {
		t.Fatalf("estest: Elasticsearch at %s is not yellow or green: %s\n%s", url, body, hint)
	}
	return c
}

var (
	runID   = newRunID()
	nameSeq atomic.Uint64
)

func newRunID() string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return fmt.Sprintf("%08x", uint32(time.Now().UnixNano()))
	}
	return hex.EncodeToString(b)
}

// UniqueName returns a name for an index, data stream or template that is
// valid in Elasticsearch (lowercase, [a-z0-9-], no leading '-', short) and
// unique per call, per process and across concurrent test processes:
// "<prefix>-<test name>-<random>-<n>". Patterns derived from it should add
// a separator, e.g. name+"-*", so that they match no other test's names.
func UniqueName(t testing.TB, prefix string) string {
	t.Helper()
	base := sanitize(prefix)
	if base == "" {
		base = "t"
	}
	if tn := sanitize(t.Name()); tn != "" {
		if len(tn) > 60 {
			tn = strings.TrimRight(tn[:60], "-")
		}
		base += "-" + tn
	}
	return fmt.Sprintf("%s-%s-%d", base, runID, nameSeq.Add(1))
}

// sanitize lowercases s and turns every run of other characters than
// [a-z0-9] into a single '-', trimmed at both ends.
func sanitize(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
			continue
		}
		if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimRight(b.String(), "-")
}

// CreateIndex creates index name with body (settings/mappings JSON, or ""
// for none), fails the test on error, and deletes the index at cleanup.
func CreateIndex(t testing.TB, c *elasticsearch.Client, name, body string) {
	t.Helper()
	opts := []func(*esapi.IndicesCreateRequest){c.Indices.Create.WithWaitForActiveShards("1")}
	if body != "" {
		opts = append(opts, c.Indices.Create.WithBody(strings.NewReader(body)))
	}
	TrackIndex(t, c, name) // registered first: also removes a half-created index
	res, err := c.Indices.Create(name, opts...)
	mustOK(t, res, err, "create index "+name)
}

// PutIndexTemplate puts the composable index template name (body is the
// _index_template JSON) and deletes it at cleanup. Register the indices or
// data streams it matches afterwards, so that they are deleted before it.
func PutIndexTemplate(t testing.TB, c *elasticsearch.Client, name, body string) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		res, err := c.Indices.DeleteIndexTemplate(name, c.Indices.DeleteIndexTemplate.WithContext(ctx))
		if err != nil {
			t.Errorf("estest cleanup: delete index template %s: %v", name, err)
			return
		}
		b := readBody(res)
		switch {
		case !res.IsError(), res.StatusCode == http.StatusNotFound:
		case bytes.Contains(b, []byte("in use by a data stream")):
			// Only when a data stream could not be deleted (see TrackDataStream).
			t.Logf("estest cleanup: index template %s stays: still used by a data stream this node cannot delete", name)
		default:
			t.Errorf("estest cleanup: delete index template %s: %s %s", name, res.Status(), b)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	res, err := c.Indices.PutIndexTemplate(name, strings.NewReader(body), c.Indices.PutIndexTemplate.WithContext(ctx))
	mustOK(t, res, err, "put index template "+name)
}

// TrackIndexTemplate deletes the composable index template name at cleanup
// (a missing one is fine). Use it for templates that the code under test
// installs itself; register it before the indices the template matches.
func TrackIndexTemplate(t testing.TB, c *elasticsearch.Client, name string) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		res, err := c.Indices.DeleteIndexTemplate(name, c.Indices.DeleteIndexTemplate.WithContext(ctx))
		if err != nil {
			t.Errorf("estest cleanup: delete index template %s: %v", name, err)
			return
		}
		if b := readBody(res); res.IsError() && res.StatusCode != http.StatusNotFound {
			t.Errorf("estest cleanup: delete index template %s: %s %s", name, res.Status(), b)
		}
	})
}

// TrackIndex deletes, at cleanup, the indices matching pattern (a name or
// a wildcard like name+"-*", hidden and closed ones included). Use it for
// indices that the test creates indirectly, e.g. by writing documents.
func TrackIndex(t testing.TB, c *elasticsearch.Client, pattern string) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		res, err := c.Indices.Delete([]string{pattern},
			c.Indices.Delete.WithContext(ctx),
			c.Indices.Delete.WithIgnoreUnavailable(true),
			c.Indices.Delete.WithAllowNoIndices(true),
			c.Indices.Delete.WithExpandWildcards("all"),
		)
		if err != nil {
			t.Errorf("estest cleanup: delete indices %s: %v", pattern, err)
			return
		}
		if b := readBody(res); res.IsError() && res.StatusCode != http.StatusNotFound {
			t.Errorf("estest cleanup: delete indices %s: %s %s", pattern, res.Status(), b)
		}
	})
}

// TrackDataStream deletes the data stream name at cleanup. The test node
// has no data-streams module, so there it cannot be deleted: its backing
// indices are closed instead (they then hold no shards open) and the
// stream's name stays until the node's data is deleted with `make es-reset`.
// That is why tests must use UniqueName for data streams.
func TrackDataStream(t testing.TB, c *elasticsearch.Client, name string) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		res, err := c.Indices.DeleteDataStream([]string{name},
			c.Indices.DeleteDataStream.WithContext(ctx),
			c.Indices.DeleteDataStream.WithExpandWildcards("all"),
		)
		if err != nil {
			t.Errorf("estest cleanup: delete data stream %s: %v", name, err)
			return
		}
		b := readBody(res)
		switch {
		case !res.IsError(), res.StatusCode == http.StatusNotFound:
			return
		case res.StatusCode == http.StatusMethodNotAllowed || bytes.Contains(b, []byte("no handler found")):
			closeBackingIndices(ctx, t, c, name)
		default:
			t.Errorf("estest cleanup: delete data stream %s: %s %s", name, res.Status(), b)
		}
	})
}

func closeBackingIndices(ctx context.Context, t testing.TB, c *elasticsearch.Client, name string) {
	res, err := c.Indices.ResolveIndex([]string{name}, c.Indices.ResolveIndex.WithContext(ctx))
	if err != nil {
		t.Errorf("estest cleanup: resolve data stream %s: %v", name, err)
		return
	}
	b := readBody(res)
	if res.IsError() {
		t.Errorf("estest cleanup: resolve data stream %s: %s %s", name, res.Status(), b)
		return
	}
	var resolved struct {
		DataStreams []struct {
			Name           string   `json:"name"`
			BackingIndices []string `json:"backing_indices"`
		} `json:"data_streams"`
	}
	if err := json.Unmarshal(b, &resolved); err != nil {
		t.Errorf("estest cleanup: resolve data stream %s: %v in %s", name, err, b)
		return
	}
	for _, ds := range resolved.DataStreams {
		if ds.Name != name || len(ds.BackingIndices) == 0 {
			continue
		}
		res, err := c.Indices.Close(ds.BackingIndices,
			c.Indices.Close.WithContext(ctx),
			c.Indices.Close.WithExpandWildcards("all"),
		)
		if err != nil {
			t.Errorf("estest cleanup: close backing indices of %s: %v", name, err)
			return
		}
		if b := readBody(res); res.IsError() {
			t.Errorf("estest cleanup: close backing indices of %s: %s %s", name, res.Status(), b)
			return
		}
		t.Logf("estest cleanup: this node cannot delete data streams (no data-streams module); "+
			"closed the backing indices of %s instead, it goes away on `make es-reset`", name)
	}
}

// mustOK fails the test unless the request succeeded with a 2xx status.
func mustOK(t testing.TB, res *esapi.Response, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("estest: %s: %v", what, err)
	}
	if b := readBody(res); res.IsError() {
		t.Fatalf("estest: %s: %s %s", what, res.Status(), b)
	}
}

// readBody reads and closes the response body so the connection is reused.
func readBody(res *esapi.Response) []byte {
	if res == nil || res.Body == nil {
		return nil
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return b
}

// TrackStore deletes, at cleanup, what an esstore with an index prefix
// created: the indices matching pattern (prefix+"-*"), then the index
// templates (esstore.Indices(prefix): a template is named like its index).
func TrackStore(t testing.TB, c *elasticsearch.Client, pattern string, templates ...string) {
	t.Helper()
	for _, name := range templates {
		TrackIndexTemplate(t, c, name) // registered first: runs after the indices are gone
	}
	TrackIndex(t, c, pattern)
}
