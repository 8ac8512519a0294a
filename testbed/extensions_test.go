package testbed

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchaudit/batchaudit/testbed/harness"
)

// authConfig is the SQLite pipeline with the contrib basicauth extension in front of the HTTP routes.
func authConfig() string {
	cfg := strings.Replace(sqliteConfig(), "  health_check:\n",
		"  basicauth:\n    htpasswd:\n      inline: |\n        loader:s3cret\n  health_check:\n", 1)
	cfg = strings.Replace(cfg, "        endpoint: 127.0.0.1:{{HTTP}}\n",
		"        endpoint: 127.0.0.1:{{HTTP}}\n        auth:\n          authenticator: basicauth\n", 1)
	return strings.Replace(cfg, "extensions: [health_check, journal]", "extensions: [basicauth, health_check, journal]", 1)
}

// TestBasicAuthCurl: with the basicauth extension configured, the collector refuses a request
// without (or with wrong) credentials and stores the events of an authenticated one.
func TestBasicAuthCurl(t *testing.T) {
	dir := t.TempDir()
	c := harness.StartCollector(t, dir, harness.NewPorts(t), authConfig())
	body := `[{"event_id":"auth-1","batch_id":"auth-run","event_type":"batch_start","timestamp":"2026-11-01T02:00:00Z","job_name":"shell-export"},` +
		`{"event_id":"auth-2","batch_id":"auth-run","event_type":"batch_end","timestamp":"2026-11-01T02:00:03Z","job_name":"shell-export","status":"success"}]`
	post := func(extra ...string) string {
		args := append([]string{"-s", "-o", filepath.Join(dir, "curl.out"), "-w", "%{http_code}", "-X", "POST",
			"-H", "Content-Type: application/json", "--data-binary", "@-"}, extra...)
		curl := exec.Command("curl", append(args, c.HTTPEndpoint()+"/v1/audit/events")...)
		curl.Stdin = strings.NewReader(body)
		code, err := curl.Output()
		require.NoError(t, err)
		return string(code)
	}
	assert.Equal(t, "401", post())
	assert.Equal(t, "401", post("-u", "loader:wrong"))
	code := post("-u", "loader:s3cret")
	resp, _ := os.ReadFile(filepath.Join(dir, "curl.out"))
	require.Equal(t, "200", code, "%s", resp)
	c.Stop()

	evs := runEvents(t, openSQLite(t, dir), "auth-run")
	assert.Len(t, evs, 2, "the authenticated request's events are stored, the refused ones are not")
}

// TestPprofExtension: the pprof extension the distribution carries serves profiles of the running
// collector (how the numbers in the docs were found).
func TestPprofExtension(t *testing.T) {
	dir := t.TempDir()
	port := harness.FreePort(t)
	cfg := strings.Replace(sqliteConfig(), "  health_check:\n", fmt.Sprintf("  pprof:\n    endpoint: 127.0.0.1:%d\n  health_check:\n", port), 1)
	cfg = strings.Replace(cfg, "extensions: [health_check, journal]", "extensions: [pprof, health_check, journal]", 1)
	harness.StartCollector(t, dir, harness.NewPorts(t), cfg)

	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/heap?debug=1", port))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(body), "heap profile", "a real heap profile of the collector")
}
