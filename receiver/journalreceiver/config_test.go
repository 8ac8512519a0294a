package journalreceiver

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/batchaudit/batchaudit/receiver/journalreceiver/internal/metadata"
)

func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	load := func(name string) *Config {
		sub, err := cm.Sub(component.NewIDWithName(metadata.Type, name).String())
		require.NoError(t, err)
		cfg := NewFactory().CreateDefaultConfig().(*Config)
		require.NoError(t, sub.Unmarshal(cfg))
		return cfg
	}
	cfg := load("")
	require.NoError(t, confmap.Validate(cfg))
	assert.Equal(t, component.MustNewIDWithName("journal", "kafka"), cfg.Journal)
	assert.ErrorContains(t, confmap.Validate(load("missing")), "journal must name a journal extension")
}
