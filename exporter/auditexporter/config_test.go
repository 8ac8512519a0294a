package auditexporter

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/batchaudit/batchaudit/exporter/auditexporter/internal/metadata"
	"github.com/batchaudit/batchaudit/store/esstore"
	"github.com/batchaudit/batchaudit/store/sqlitestore"
)

func loadConfig(t *testing.T, name string) *Config {
	t.Helper()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	sub, err := cm.Sub(component.NewIDWithName(metadata.Type, name).String())
	require.NoError(t, err)
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	require.NoError(t, sub.Unmarshal(cfg))
	return cfg
}

func TestConfigDefaults(t *testing.T) {
	cfg := loadConfig(t, "")
	assert.Equal(t, createDefaultConfig(), cfg)
	require.NoError(t, confmap.Validate(cfg))
	assert.Equal(t, "default", cfg.Stream)
	assert.Equal(t, "sqlite", cfg.backendName())
	assert.Equal(t, sqlitestore.DefaultPath, cfg.sqlitePath())
	assert.Equal(t, 30*time.Second, cfg.TimeoutConfig.Timeout)
	q := cfg.QueueConfig.Get()
	require.NotNil(t, q)
	assert.True(t, q.BlockOnOverflow, "a full queue blocks instead of dropping audit events")
	assert.Nil(t, q.StorageID)
	require.True(t, q.Batch.HasValue())
	assert.Equal(t, int64(1000), q.Batch.Get().MinSize)
	assert.True(t, cfg.RetryConfig.Enabled)
	assert.Zero(t, cfg.RetryConfig.MaxElapsedTime, "retries never give up by default")
}

func TestConfigSQLite(t *testing.T) {
	cfg := loadConfig(t, "sqlite")
	require.NoError(t, confmap.Validate(cfg))
	assert.Equal(t, "orders-prod", cfg.Stream)
	assert.Equal(t, "/var/lib/batchaudit/audit.db", cfg.sqlitePath())
	assert.Equal(t, 10*time.Second, cfg.TimeoutConfig.Timeout)
	q := cfg.QueueConfig.Get()
	require.NotNil(t, q.StorageID)
	assert.Equal(t, component.MustNewID("file_storage"), *q.StorageID)
	assert.Equal(t, int64(5000), q.QueueSize)
	assert.Equal(t, time.Hour, cfg.RetryConfig.MaxElapsedTime)
}

func TestConfigElasticsearch(t *testing.T) {
	cfg := loadConfig(t, "elasticsearch")
	require.NoError(t, confmap.Validate(cfg))
	assert.Equal(t, "elasticsearch", cfg.backendName())
	es := cfg.Elasticsearch.Get()
	want := esstore.NewDefaultConfig()
	want.Endpoints = []string{"https://es1:9200", "https://es2:9200"}
	want.Username, want.Password, want.IndexPrefix = "batchaudit", "secret", "audit"
	assert.Equal(t, want, *es)
	assert.Equal(t, "audit-es", cfg.Stream)
}

func TestConfigCheckpoints(t *testing.T) {
	cfg := loadConfig(t, "checkpoints")
	require.NoError(t, confmap.Validate(cfg))
	assert.Equal(t, CheckpointsConfig{
		KeyFiles: []string{"/etc/batchaudit/old.key", "/etc/batchaudit/new.key"}, Interval: 30 * time.Second, MaxEvents: 5000,
		OriginPrefix: "audit.example.com/", File: "/var/log/batchaudit/checkpoints.jsonl", PostURL: "https://witness.example.com/checkpoints",
	}, cfg.Checkpoints)
	def := createDefaultConfig().(*Config).Checkpoints
	assert.Equal(t, CheckpointsConfig{Interval: 10 * time.Second, MaxEvents: 100_000, OriginPrefix: "batchaudit/"}, def, "off without key_files")
	require.NoError(t, confmap.Validate(loadConfig(t, "checkpoints_post_url_only")), "a witness alone publishes them")
}

func TestConfigInvalid(t *testing.T) {
	for name, want := range map[string]string{
		"empty_stream":                 "stream must not be empty",
		"bad_stream":                   `stream "orders prod" is invalid: use letters, digits, '.', '_' and '-', starting with a letter or digit, at most 128 characters`,
		"zero_timeout":                 "timeout must be positive: an audit write that never ends would hold the queue forever",
		"bad_queue":                    "sending_queue: `num_consumers` must be positive",
		"wait_with_storage":            "sending_queue: `wait_for_result` is not supported with a persistent queue configured with `storage`",
		"elasticsearch_no_endpoints":   "elasticsearch: endpoints: at least one Elasticsearch URL is required",
		"both_backends":                "sqlite.path and elasticsearch are both set: configure one backend",
		"checkpoints_bad_interval":     "checkpoints::interval must be positive",
		"checkpoints_file_without_key": "checkpoints::file and post_url need key_files to sign with",
		"checkpoints_bad_post_url":     `checkpoints::post_url "ftp://witness" must be an http or https URL`,
		"checkpoints_unpublished": "checkpoints::key_files is set but neither checkpoints::file nor checkpoints::post_url: " +
			"signed checkpoints must also leave the store; set file to a path the store's administrators cannot write (docs/integrity.md)",
	} {
		t.Run(name, func(t *testing.T) {
			err := confmap.Validate(loadConfig(t, name))
			require.Error(t, err)
			assert.Equal(t, want, err.Error())
		})
	}
}
