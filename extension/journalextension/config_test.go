package journalextension

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/batchaudit/batchaudit/extension/journalextension/internal/metadata"
)

func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	tests := []struct {
		id      component.ID
		want    *Config
		wantErr []string
	}{
		{id: component.NewID(metadata.Type), want: createDefaultConfig().(*Config)},
		{id: component.NewIDWithName(metadata.Type, "custom"), want: &Config{
			Directory: "/var/lib/otelcol/journal", Fsync: false, MaxBacklogMiB: 4096, SegmentMiB: 128,
			CheckpointInterval: 5 * time.Second, CheckpointMiB: 64, TickInterval: time.Second,
			MaxDeliveryEvents: 20000, RetryInterval: 500 * time.Millisecond, MaxRetryInterval: time.Minute, DrainTimeout: 30 * time.Second,
			StateCacheMiB: 8, StateMemtableMiB: 4, GoMemoryLimitMiB: 512,
			Kafka: createDefaultConfig().(*Config).Kafka,
		}},
		{id: component.NewIDWithName(metadata.Type, "invalid"), wantErr: []string{
			"directory must not be empty", "max_backlog_mib must be positive", "tick_interval must be positive",
			"state_cache_mib and state_memtable_mib must be positive", "go_memory_limit_mib must not be negative",
		}},
		{id: component.NewIDWithName(metadata.Type, "kafka"), want: func() *Config {
			cfg := createDefaultConfig().(*Config)
			cfg.Directory = "/var/lib/otelcol/journal"
			k := cfg.Kafka.GetOrInsertDefault()
			k.Brokers, k.Topic, k.Group, k.TransactionalID = []string{"kafka-1:9092", "kafka-2:9092"}, "audit-events", "audit-processing", "processing-1"
			k.Partitions, k.ReplicationFactor, k.SessionTimeout = 24, 3, 20*time.Second
			return cfg
		}()},
		{id: component.NewIDWithName(metadata.Type, "kafka_invalid"), wantErr: []string{
			"kafka::brokers must list at least one bootstrap server", "kafka::group must not be empty",
			"kafka::heartbeat_interval must be positive and below session_timeout",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.id.String(), func(t *testing.T) {
			cfg := NewFactory().CreateDefaultConfig()
			sub, err := cm.Sub(tt.id.String())
			require.NoError(t, err)
			require.NoError(t, sub.Unmarshal(cfg))
			err = confmap.Validate(cfg)
			if tt.wantErr != nil {
				for _, msg := range tt.wantErr {
					assert.ErrorContains(t, err, msg)
				}
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, cfg)
		})
	}
}
