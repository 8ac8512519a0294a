package esstore

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/confmap/confmaptest"
)

func loadConfig(t *testing.T, key string) Config {
	t.Helper()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	sub, err := cm.Sub(key)
	require.NoError(t, err)
	cfg := NewDefaultConfig()
	require.NoError(t, sub.Unmarshal(&cfg))
	return cfg
}

func TestDefaults(t *testing.T) {
	cfg := NewDefaultConfig()
	require.NoError(t, cfg.Validate())
	assert.Equal(t, []string{"http://127.0.0.1:9200"}, cfg.Endpoints)
	assert.Equal(t, 30*time.Second, cfg.Timeout)
	assert.True(t, cfg.Compression)
	assert.Equal(t, "batchaudit", cfg.IndexPrefix)
	assert.True(t, cfg.InstallTemplates)
	assert.Equal(t, 5<<20, cfg.MaxBulkBytes)
	assert.Equal(t, RetryConfig{InitialInterval: 100 * time.Millisecond, MaxInterval: 30 * time.Second}, cfg.Retry)
	assert.Equal(t, "batchaudit-events", cfg.eventsIndex())
	assert.Equal(t, "batchaudit-runs", cfg.runsIndex())
	assert.Equal(t, "batchaudit-deadletters", cfg.deadLettersIndex())
}

func TestLoadConfig(t *testing.T) {
	full := loadConfig(t, "full")
	require.NoError(t, full.Validate())
	assert.Equal(t, []string{"https://es1:9200", "https://es2:9200"}, full.Endpoints)
	assert.Equal(t, "audit", full.Username)
	assert.Equal(t, "secret", string(full.Password))
	assert.True(t, full.TLS.InsecureSkipVerify)
	assert.True(t, full.AllowInsecureSkipVerify)
	assert.Equal(t, 10*time.Second, full.Timeout)
	assert.False(t, full.Compression)
	assert.Equal(t, "audit-prod", full.IndexPrefix)
	assert.False(t, full.InstallTemplates)
	assert.Equal(t, 1<<20, full.MaxBulkBytes)
	assert.Equal(t, RetryConfig{InitialInterval: 50 * time.Millisecond, MaxInterval: 5 * time.Second, MaxAttempts: 7}, full.Retry)

	partial := loadConfig(t, "partial")
	require.NoError(t, partial.Validate())
	assert.Equal(t, "aWQ6a2V5", string(partial.APIKey))
	assert.Equal(t, "batchaudit", partial.IndexPrefix, "defaults kept")
	assert.True(t, partial.Compression)
}

func TestValidateMessages(t *testing.T) {
	cfg := loadConfig(t, "invalid")
	err := cfg.Validate()
	require.Error(t, err)
	assert.Equal(t, `endpoints[0]: "localhost:9200" must start with http:// or https://
endpoints[1]: "http://" has no host
password: set username too, or use api_key
timeout: must be positive, got 0s
index_prefix: "Audit" must be lowercase letters, digits, '.', '_' or '-', starting with a letter or digit
max_bulk_bytes: must be at least 1024, got 10
retry.max_interval: must be at least retry.initial_interval (1s), got 10ms
retry.max_attempts: must be 0 (until the deadline) or positive, got -1
tls.insecure_skip_verify: refused, it turns off the check of Elasticsearch's certificate (anyone on the path could read the credentials and change the audit trail); give the CA with tls.ca_file, or, for a test node only, also set allow_insecure_skip_verify: true`, err.Error())

	empty := NewDefaultConfig()
	empty.Endpoints, empty.IndexPrefix = nil, ""
	assert.EqualError(t, empty.Validate(), "endpoints: at least one Elasticsearch URL is required\nindex_prefix: must not be empty")
}

func TestEndpointsForLogHideCredentials(t *testing.T) {
	cfg := NewDefaultConfig()
	cfg.Endpoints = []string{"https://user:pw@es:9200", "http://es2:9200"}
	assert.Equal(t, "https://es:9200,http://es2:9200", cfg.endpointsForLog())
}
