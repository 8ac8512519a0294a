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
	assert.Equal(t, LimitsConfig{MaxBodyBytes: 8 << 20, MaxDecompressedBytes: 64 << 20, MaxEventsPerRequest: 10000}, cfg.Limits)
	assert.Equal(t, 5*time.Second, cfg.RetryAfter)
}

func TestConfigCustom(t *testing.T) {
	cfg, err := loadConfig(t, "custom")
	require.NoError(t, err)
	assert.Equal(t, "0.0.0.0:14318", cfg.Protocols.HTTP.Get().NetAddr.Endpoint)
	assert.Equal(t, []string{"", "gzip"}, cfg.Protocols.HTTP.Get().CompressionAlgorithms)
	assert.Equal(t, "0.0.0.0:14317", cfg.Protocols.GRPC.Get().NetAddr.Endpoint)
	assert.Equal(t, LimitsConfig{MaxBodyBytes: 1 << 20, MaxDecompressedBytes: 4 << 20, MaxEventsPerRequest: 500}, cfg.Limits)
	assert.Equal(t, 10*time.Second, cfg.RetryAfter)

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
			"retry_after must be positive, got 0s",
		"bad_compression": `protocols::http::compression_algorithms: "snappy" is not supported (use gzip, zstd, zlib, deflate)`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := loadConfig(t, name)
			require.Error(t, err)
			assert.Equal(t, want, err.Error())
		})
	}
}
