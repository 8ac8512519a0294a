package esstore

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestILMPolicyFile(t *testing.T) {
	var p struct {
		Policy struct {
			Phases map[string]struct {
				MinAge  string                     `json:"min_age"`
				Actions map[string]json.RawMessage `json:"actions"`
			} `json:"phases"`
		} `json:"policy"`
	}
	body, err := ILMPolicy("")
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(body, &p))
	ph := p.Policy.Phases
	require.Len(t, ph, 3, "hot, warm, delete")
	assert.Contains(t, ph["hot"].Actions, "rollover", "ILM deletes whole indices: only rollover indices age")
	assert.Contains(t, ph["warm"].Actions, "readonly")
	assert.Equal(t, "400d", ph["delete"].MinAge)
	assert.Contains(t, ph["delete"].Actions, "delete")

	body, err = ILMPolicy("2557d")
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(body, &p))
	assert.Equal(t, "2557d", p.Policy.Phases["delete"].MinAge)
}

// TestILMInstalledWhereAvailable: the test node has no ILM module, so a
// cluster that has one is a stub here (an httptest server answering like
// Elasticsearch); the real node's answer is in TestILMMissingOnTheTestNode.
func TestILMInstalledWhereAvailable(t *testing.T) {
	var mu sync.Mutex
	got := map[string][]byte{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			require.NoError(t, err)
			body = zr
		}
		b, _ := io.ReadAll(body)
		mu.Lock()
		got[r.Method+" "+r.URL.Path] = b
		mu.Unlock()
		w.Header().Set("X-Elastic-Product", "Elasticsearch")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"acknowledged":true}`))
	}))
	defer srv.Close()
	cfg := NewDefaultConfig()
	cfg.Endpoints, cfg.InstallTemplates = []string{srv.URL}, false
	s, err := New(ctx(t), cfg, nil)
	require.NoError(t, err)
	defer s.Close()
	res, err := s.installILM(ctx(t), "500d")
	require.NoError(t, err)
	assert.Equal(t, &ILMResult{Policy: ILMPolicyName, Installed: true}, res)
	want, err := ILMPolicy("500d")
	require.NoError(t, err)
	assert.JSONEq(t, string(want), string(got["PUT /_ilm/policy/batchaudit-retention"]))
}

// TestILMMissingOnTheTestNode: the real node lacks x-pack-ilm; Setup says
// so and does the rest.
func TestILMMissingOnTheTestNode(t *testing.T) {
	cfg := testConfig(testPrefix(t))
	res, err := Setup(ctx(t), cfg, SetupOptions{ILM: true}, nil)
	require.NoError(t, err)
	assert.Equal(t, &ILMResult{Policy: ILMPolicyName,
		Reason: "the cluster has no index lifecycle management (no handler for _ilm: the x-pack-ilm module is not loaded)"}, res.ILM)
	assert.Equal(t, Indices(cfg.IndexPrefix), res.Indices)
}
