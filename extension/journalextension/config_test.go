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
		}},
		{id: component.NewIDWithName(metadata.Type, "invalid"), wantErr: []string{
			"directory must not be empty", "max_backlog_mib must be positive", "tick_interval must be positive",
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
