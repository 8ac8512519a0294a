package reportextension

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/batchaudit/batchaudit/extension/reportextension/internal/metadata"
	"github.com/batchaudit/batchaudit/reports"
)

func load(t *testing.T, id string) *Config {
	t.Helper()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	sub, err := cm.Sub(id)
	require.NoError(t, err)
	cfg := createDefaultConfig().(*Config)
	require.NoError(t, sub.Unmarshal(cfg))
	return cfg
}

func TestConfig(t *testing.T) {
	cfg := load(t, component.NewID(metadata.Type).String())
	require.NoError(t, confmap.Validate(cfg))
	assert.Equal(t, "./batchaudit-data/audit.db", cfg.SQLite.Path)
	assert.False(t, cfg.Elasticsearch.HasValue())
	assert.Equal(t, "Europe/Berlin", cfg.Timezone)
	assert.Equal(t, 100, cfg.MaxCatchUp, "default")
	require.Len(t, cfg.Schedules, 2)
	assert.Equal(t, ScheduleConfig{Name: "recon-monthly", Kind: reports.KindReconciliation, Cron: "@monthly", Period: "month",
		Filters: FiltersConfig{Job: "orders-clean"}, Formats: []string{"html", "json", "csv", "pdf"}}, cfg.Schedules[1])
	assert.Equal(t, []string{"customer"}, cfg.Catalog.Datasets[0].SubjectFields)
	assert.True(t, cfg.Catalog.Datasets[1].EPHI)
	assert.Equal(t, "secret", string(cfg.RedactionKey))
	assert.Equal(t, AttestationConfig{CheckpointKeys: []string{"collector.example+4620c2d8+Ae1JKMYo0cLG6ukDOJBZlWEpWSc6XGP5NjbBRhSshzfR"},
		OriginPrefix: "batchaudit/", Wait: 5 * time.Minute}, cfg.Attestation)

	es := load(t, "reports/es")
	require.NoError(t, confmap.Validate(es))
	assert.True(t, es.Elasticsearch.HasValue())
	assert.Equal(t, "elasticsearch:[http://127.0.0.1:9200] index prefix batchaudit", storeName(es))

	err := confmap.Validate(load(t, "reports/bad"))
	require.Error(t, err)
	for _, want := range []string{
		"sqlite.path and elasticsearch are both set",
		"timezone: unknown time zone Mars/Olympus",
		"signing_key_file: required",
		"max_catch_up: must be at least 1",
		"attestation.wait: must not be negative, got -1s",
		"attestation.checkpoint_keys: signing:",
		`schedules[0].name: "bad name"`,
		`schedules[0].kind: "soc2"`,
		`schedules[0].cron: "every minute"`,
		`schedules[0].period: "fortnight"`,
		`schedules[0].formats: "docx"`,
		"schedules[1].filters: a lineage schedule needs a record or a dataset",
		`schedules[2].name: "lin" is used twice`,
	} {
		assert.ErrorContains(t, err, want)
	}
	assert.NoError(t, confmap.Validate(createDefaultConfig()), "the defaults are valid (no schedules)")
}
