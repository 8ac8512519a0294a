package reportextension

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/extension"

	"github.com/batchaudit/batchaudit/extension/reportextension/internal/metadata"
	"github.com/batchaudit/batchaudit/reports"
	"github.com/batchaudit/batchaudit/store/esstore"
)

// NewFactory returns the report extension factory.
func NewFactory() extension.Factory {
	return extension.NewFactory(metadata.Type, createDefaultConfig, create, metadata.ExtensionStability)
}

func createDefaultConfig() component.Config {
	es := esstore.NewDefaultConfig()
	es.Endpoints = nil // naming the section without endpoints is an error, not localhost
	return &Config{
		Elasticsearch: configoptional.Default(es),
		OutputDir:     "./batchaudit-data/reports",
		Timezone:      "UTC",
		MaxCatchUp:    100,
		Attestation:   AttestationConfig{OriginPrefix: reports.DefaultOriginPrefix, Wait: time.Minute},
	}
}

func create(_ context.Context, set extension.Settings, cfg component.Config) (extension.Extension, error) {
	return newExtension(cfg.(*Config), set, realClock{}), nil
}
