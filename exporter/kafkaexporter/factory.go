package kafkaexporter

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"

	"github.com/batchaudit/batchaudit/exporter/kafkaexporter/internal/metadata"
)

const defaultTimeout = 10 * time.Second

// NewFactory returns the Kafka exporter factory (logs: audit events).
func NewFactory() exporter.Factory {
	return exporter.NewFactory(metadata.Type, createDefaultConfig,
		exporter.WithLogs(createLogs, metadata.LogsStability))
}

func createLogs(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Logs, error) {
	c := cfg.(*Config)
	e, err := newExporter(c, set)
	if err != nil {
		return nil, err
	}
	// No queue and no retries here: a request returns when Kafka
	// acknowledged its records or failed, so the receiver in front
	// answers 200 only for events Kafka holds, and 503 otherwise (the
	// client retries).
	return exporterhelper.NewLogs(ctx, set, cfg, e.push,
		exporterhelper.WithStart(e.start),
		exporterhelper.WithShutdown(e.shutdown),
		exporterhelper.WithCapabilities(consumer.Capabilities{MutatesData: false}),
		exporterhelper.WithTimeout(c.TimeoutConfig),
		exporterhelper.WithQueue(configoptional.None[exporterhelper.QueueBatchConfig]()),
	)
}
