package cdcprocessor

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/batchaudit/batchaudit/processor/cdcprocessor/internal/metadata"
)

func loadConfig(t *testing.T, name string) (*Config, error) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	sub, err := cm.Sub(component.NewIDWithName(metadata.Type, name).String())
	require.NoError(t, err)
	cfg := createDefaultConfig().(*Config)
	require.NoError(t, sub.Unmarshal(cfg))
	return cfg, confmap.Validate(cfg)
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := loadConfig(t, "")
	require.NoError(t, err)
	assert.Equal(t, createDefaultConfig(), cfg)
	assert.Nil(t, cfg.Storage)
	assert.Equal(t, []DatasetConfig{{Name: "*"}}, cfg.Datasets)
	assert.Equal(t, NoChangeKeep, cfg.NoChange)
	assert.Equal(t, RecordDataRedact, cfg.RecordData)
	assert.Equal(t, 4, cfg.MemoDepth)
	assert.Equal(t, 7*24*time.Hour, cfg.RunTTL)
}

func TestConfigFull(t *testing.T) {
	cfg, err := loadConfig(t, "full")
	require.NoError(t, err)
	id := component.MustNewIDWithName("file_storage", "cdc")
	assert.Equal(t, &id, cfg.Storage)
	assert.Equal(t, "field-secret", string(cfg.FieldHashKey))
	assert.Equal(t, NoChangeCount, cfg.NoChange)
	assert.Equal(t, RecordDataDrop, cfg.RecordData)
	assert.Equal(t, 8, cfg.MemoDepth)
	assert.Equal(t, 48*time.Hour, cfg.RunTTL)
	assert.Equal(t, 1000, cfg.MaxScanBatch)
	require.Len(t, cfg.Datasets, 2)
	assert.Equal(t, DatasetConfig{
		Name: "sales.*", Namespace: "postgres://*", KeyFields: []string{"order_id"}, IgnoreFields: []string{"updated_at"},
		FullSnapshot: true, DeleteScope: ScopePartition, KeepOldValues: true,
		Redact: RedactConfig{Hash: []string{"customer"}, Drop: []string{"iban"}},
	}, cfg.Datasets[0])
	assert.Equal(t, RoleSource, cfg.Datasets[1].Role)
}

func TestConfigInvalid(t *testing.T) {
	tests := map[string]string{
		"bad_no_change": `no_change: "sometimes" is not one of keep, count, drop`,
		"bad_dataset": `datasets[0].name: invalid pattern "["` + "\n" +
			`datasets[0].role: "sink" is not one of target, source` + "\n" +
			`datasets[0].delete_scope: partition needs full_snapshot: true` + "\n" +
			`datasets[0]: include_fields and ignore_fields are exclusive` + "\n" +
			`datasets[0].redact.hash: needs redaction_key (an unkeyed hash of a low-entropy value can be reversed)` + "\n" +
			`datasets[0].redact: key field "customer" cannot be redacted (the record id carries it)`,
		"bad_source_snapshot": `datasets[0].full_snapshot: only target datasets can be full snapshots`,
		"bad_empty": `record_data: "keep" is not one of redact, drop` + "\n" +
			`memo_depth: must be between 1 and 16, got 0` + "\n" +
			`datasets: at least one dataset is required (use name: "*" for all)`,
	}
	for name, want := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := loadConfig(t, name)
			require.Error(t, err)
			assert.Equal(t, want, err.Error())
		})
	}
}
