package lineageprocessor

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/batchaudit/batchaudit/processor/lineageprocessor/internal/metadata"
)

func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	storageID := component.MustNewIDWithName("file_storage", "lineage")
	tests := []struct {
		name     string
		expected *Config
		errMsg   string
	}{
		{name: "", expected: createDefaultConfig().(*Config)},
		{name: "custom", expected: &Config{
			Storage: &storageID, RunTimeout: 2 * time.Hour, SettleTime: 5 * time.Second, CheckpointInterval: 10 * time.Second,
			MaxActiveLineages: 5000, MemoryLimitMiB: 64, MaxFindingRecordIDs: 20, SettledRunRetention: 72 * time.Hour,
		}},
		{name: "bad_timeout", errMsg: "run_timeout must be positive"},
		{name: "bad_limits", errMsg: "settle_time must not be negative (0 decides findings at the batch end)\n" +
			"max_active_lineages must not be negative (0 means no count limit)\n" +
			"memory_limit_mib must not be negative (0 means no memory limit)\n" +
			"max_finding_record_ids must be positive\n" +
			"settled_run_retention must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := createDefaultConfig()
			sub, err := cm.Sub(component.NewIDWithName(metadata.Type, tt.name).String())
			require.NoError(t, err)
			require.NoError(t, sub.Unmarshal(cfg))
			err = confmap.Validate(cfg)
			if tt.errMsg != "" {
				require.EqualError(t, err, tt.errMsg)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.expected, cfg)
		})
	}
}

func TestDefaultConfig(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	assert.Nil(t, cfg.Storage)
	assert.Equal(t, 24*time.Hour, cfg.RunTimeout)
	assert.Equal(t, 30*time.Second, cfg.SettleTime)
	assert.Equal(t, 30*time.Second, cfg.CheckpointInterval)
	assert.Equal(t, 200_000, cfg.MaxActiveLineages)
	assert.Equal(t, 256, cfg.MemoryLimitMiB)
	assert.Equal(t, 24*time.Hour, cfg.SettledRunRetention)
	assert.NoError(t, cfg.Validate())
}
