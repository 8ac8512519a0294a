package cdcprocessor

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processorhelper"

	"github.com/batchaudit/batchaudit/processor/cdcprocessor/internal/metadata"
)

// NewFactory returns the cdcprocessor factory.
func NewFactory() processor.Factory {
	return processor.NewFactory(metadata.Type, createDefaultConfig,
		processor.WithLogs(createLogs, metadata.LogsStability))
}

func createLogs(ctx context.Context, set processor.Settings, cfg component.Config, next consumer.Logs) (processor.Logs, error) {
	pl, _, err := newLogs(ctx, set, cfg.(*Config), next)
	return pl, err
}

// newLogs builds the processor wrapped by processorhelper (the standard
// incoming/outgoing item metrics), and returns the processor itself too,
// for tests that look inside.
func newLogs(ctx context.Context, set processor.Settings, cfg *Config, next consumer.Logs) (processor.Logs, *cdcProcessor, error) {
	p, err := newProcessor(set, cfg, next)
	if err != nil {
		return nil, nil, err
	}
	pl, err := processorhelper.NewLogs(ctx, set, cfg, next, p.processLogs,
		// Change types are set on the events, and deletes appended.
		processorhelper.WithCapabilities(consumer.Capabilities{MutatesData: true}),
		processorhelper.WithStart(p.start),
		processorhelper.WithShutdown(p.shutdown))
	if err != nil {
		return nil, nil, err
	}
	return pl, p, nil
}
