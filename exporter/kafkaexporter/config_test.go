package kafkaexporter

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/batchaudit/batchaudit/exporter/kafkaexporter/internal/metadata"
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
	require.NoError(t, confmap.Validate(cfg))
	assert.Equal(t, []string{"127.0.0.1:9092"}, cfg.Brokers)
	assert.Equal(t, "batchaudit-events", cfg.Topic)
	assert.Equal(t, int32(12), cfg.Partitions)
	assert.Equal(t, int16(-1), cfg.ReplicationFactor, "the brokers' default replication factor")
	assert.Equal(t, "batchaudit-gateway", cfg.ClientID)
	assert.Equal(t, "lz4", cfg.Compression)
	assert.Equal(t, 900<<10, cfg.MaxRecordBytes)
	assert.Equal(t, 10*time.Second, cfg.TimeoutConfig.Timeout)
}

func TestConfigCustom(t *testing.T) {
	cfg := loadConfig(t, "custom")
	require.NoError(t, confmap.Validate(cfg))
	assert.Equal(t, []string{"kafka-1:9092", "kafka-2:9092"}, cfg.Brokers)
	assert.Equal(t, "gw-1", cfg.ClientID)
	assert.Equal(t, "audit-events", cfg.Topic)
	assert.Equal(t, int32(24), cfg.Partitions)
	assert.Equal(t, int16(3), cfg.ReplicationFactor)
	assert.Equal(t, "zstd", cfg.Compression)
	assert.Equal(t, 500000, cfg.MaxRecordBytes)
	assert.Equal(t, 3*time.Second, cfg.TimeoutConfig.Timeout)
}

func TestConfigInvalid(t *testing.T) {
	err := confmap.Validate(loadConfig(t, "invalid"))
	for _, msg := range []string{
		`broker "nohost" must be host:port`, `topic "bad topic" is invalid`, "partitions must be positive",
		"replication_factor must be positive", `compression "brotli" is not supported`,
		"max_record_bytes must be at least 1024", "timeout must be positive",
	} {
		assert.ErrorContains(t, err, msg)
	}
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	assert.ErrorContains(t, confmap.Validate(cfg), "brokers must list at least one bootstrap server")
}
