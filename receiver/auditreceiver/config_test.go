package auditreceiver

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/batchaudit/batchaudit/receiver/auditreceiver/internal/metadata"
)

func loadConfig(t *testing.T, name string) (*Config, error) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	id := component.NewID(metadata.Type)
	if name != "" {
		id = component.NewIDWithName(metadata.Type, name)
	}
	sub, err := cm.Sub(id.String())
	require.NoError(t, err)
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	require.NoError(t, sub.Unmarshal(cfg))
	return cfg, confmap.Validate(cfg)
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := loadConfig(t, "")
	require.NoError(t, err)
	assert.Equal(t, "localhost:4318", cfg.Protocols.HTTP.Get().NetAddr.Endpoint)
	assert.Equal(t, "localhost:4317", cfg.Protocols.GRPC.Get().NetAddr.Endpoint)
	assert.Equal(t, LimitsConfig{MaxBodyBytes: 8 << 20, MaxDecompressedBytes: 64 << 20, MaxEventsPerRequest: 10000,
		MaxAttributeDepth: 20, MaxValuesPerEvent: 100000, MaxStringBytes: 4 << 20}, cfg.Limits)
	assert.Equal(t, time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), cfg.TimeWindow.Min)
	assert.Equal(t, time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC), cfg.TimeWindow.Max)
	assert.Empty(t, cfg.AllowedJSONContentTypes)
	assert.Equal(t, 5*time.Second, cfg.RetryAfter)
	h := cfg.Protocols.HTTP.Get()
	assert.Equal(t, 10*time.Second, h.ReadHeaderTimeout)
	assert.Equal(t, 30*time.Second, h.ReadTimeout)
	assert.Equal(t, 60*time.Second, h.WriteTimeout)
	idle := h.IdleTimeout //nolint:staticcheck // confighttp keeps its default here or in Keepalive, by feature gate
	if ka := h.Keepalive.Get(); ka != nil {
		idle = ka.IdleTimeout
	}
	assert.Equal(t, 60*time.Second, idle, "confighttp's default idle timeout applies")
}

func TestConfigCustom(t *testing.T) {
	cfg, err := loadConfig(t, "custom")
	require.NoError(t, err)
	assert.Equal(t, "0.0.0.0:14318", cfg.Protocols.HTTP.Get().NetAddr.Endpoint)
	assert.Equal(t, []string{"", "gzip"}, cfg.Protocols.HTTP.Get().CompressionAlgorithms)
	assert.Equal(t, "0.0.0.0:14317", cfg.Protocols.GRPC.Get().NetAddr.Endpoint)
	assert.Equal(t, LimitsConfig{MaxBodyBytes: 1 << 20, MaxDecompressedBytes: 4 << 20, MaxEventsPerRequest: 500,
		MaxAttributeDepth: 8, MaxValuesPerEvent: 1000, MaxStringBytes: 64 << 10}, cfg.Limits)
	assert.True(t, time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Equal(cfg.TimeWindow.Min), cfg.TimeWindow.Min)
	assert.True(t, time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).Equal(cfg.TimeWindow.Max), cfg.TimeWindow.Max)
	assert.Equal(t, []string{"text/plain", ""}, cfg.AllowedJSONContentTypes)
	assert.Equal(t, 10*time.Second, cfg.RetryAfter)

	ps, err := loadConfig(t, "pseudonymize")
	require.NoError(t, err)
	assert.Equal(t, PseudonymizeConfig{Key: "0123456789abcdef0123456789abcdef", RecordID: true, Fields: []string{"email", "customer"}}, ps.Pseudonymize)
	assert.NotNil(t, ps.pseudonymizer())
	assert.Nil(t, cfg.pseudonymizer(), "off unless record_id or fields are set")

	httpOnly, err := loadConfig(t, "http_only")
	require.NoError(t, err)
	assert.True(t, httpOnly.Protocols.HTTP.HasValue())
	assert.False(t, httpOnly.Protocols.GRPC.HasValue())
}

func TestConfigInvalid(t *testing.T) {
	for name, want := range map[string]string{
		"no_protocols": "must specify at least one protocol (protocols::http or protocols::grpc)",
		"bad_limits": "limits::max_decompressed_bytes (1024) must be at least limits::max_body_bytes (2048)\n" +
			"limits::max_events_per_request must be positive, got 0\n" +
			"limits::max_attribute_depth must be between 1 and 60 (the decoders refuse 64 levels outright), got 61\n" +
			"limits::max_values_per_event must be positive, got 0\n" +
			"limits::max_string_bytes must be positive, got -1\n" +
			"time_window: [1969-12-31T00:00:00Z, 2200-01-01T00:00:00Z) must be a non-empty range within [1970-01-01T00:00:00Z, 2262-04-11T23:47:16.854775807Z], the times a log record and the stores hold\n" +
			`allowed_json_content_types: "text/plain; charset=utf-8" is not a lower-case media type such as text/plain (parameters are not allowed)` + "\n" +
			`allowed_json_content_types: "TEXT/PLAIN" is not a lower-case media type such as text/plain (parameters are not allowed)` + "\n" +
			"retry_after must be positive, got 0s",
		"bad_compression": `protocols::http::compression_algorithms: "snappy" is not supported (use gzip, zstd, zlib, deflate)`,
		"bad_pseudonymize": "pseudonymize::key must be at least 16 bytes (32 random bytes recommended), got 5: set it, e.g. from an environment variable\n" +
			"pseudonymize::fields: a field name is empty\n" +
			`pseudonymize::fields: "email" is listed twice`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := loadConfig(t, name)
			require.Error(t, err)
			assert.Equal(t, want, err.Error())
		})
	}
}
