package auditexporter

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"

	"github.com/batchaudit/batchaudit/exporter/auditexporter/internal/metadata"
)

const (
	defaultStream  = "default"
	defaultTimeout = 30 * time.Second
)

// NewFactory returns the audit exporter factory (logs only: audit events are
// log records).
func NewFactory() exporter.Factory {
	return exporter.NewFactory(metadata.Type, createDefaultConfig,
		exporter.WithLogs(createLogs, metadata.LogsStability))
}

func createDefaultConfig() component.Config {
	// Audit defaults favour losing nothing over throughput: a full queue
	// blocks the pipeline (back-pressure to the sender) instead of dropping,
	// and retries never give up.
	queue := exporterhelper.NewDefaultQueueConfig()
	queue.BlockOnOverflow = true
	queue.NumConsumers = 4
	batch := exporterhelper.NewDefaultBatchConfig()
	batch.MinSize = 1000
	batch.MaxSize = 10000
	queue.Batch = configoptional.Some(batch)
	retry := configretry.NewDefaultBackOffConfig()
	retry.MaxElapsedTime = 0
	timeout := exporterhelper.NewDefaultTimeoutConfig()
	timeout.Timeout = defaultTimeout
	return &Config{
		Stream:        defaultStream,
		Checkpoints:   CheckpointsConfig{Interval: 10 * time.Second, MaxEvents: 100_000, OriginPrefix: "batchaudit/"},
		Elasticsearch: configoptional.Default(defaultElasticsearchConfig()),
		TimeoutConfig: timeout,
		QueueConfig:   configoptional.Some(queue),
		RetryConfig:   retry,
	}
}

func createLogs(ctx context.Context, set exporter.Settings, cfg component.Config) (exporter.Logs, error) {
	c := cfg.(*Config)
	e, err := newExporter(c, set, openStore)
	if err != nil {
		return nil, err
	}
	return exporterhelper.NewLogs(ctx, set, cfg, e.push,
		exporterhelper.WithStart(e.start),
		exporterhelper.WithShutdown(e.shutdown),
		exporterhelper.WithCapabilities(consumer.Capabilities{MutatesData: false}),
		exporterhelper.WithTimeout(c.TimeoutConfig),
		exporterhelper.WithRetry(c.RetryConfig),
		exporterhelper.WithQueue(c.QueueConfig),
	)
}
