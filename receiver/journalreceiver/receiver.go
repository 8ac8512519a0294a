package journalreceiver

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"

	"github.com/batchaudit/batchaudit/journal"
)

type journalReceiver struct {
	cfg  *Config
	set  receiver.Settings
	next consumer.Logs

	delivery *journal.Delivery
}

var _ receiver.Logs = (*journalReceiver)(nil)

// Start runs the journal's delivery into the pipeline.
func (r *journalReceiver) Start(_ context.Context, host component.Host) error {
	j, err := journal.Lookup(host, r.cfg.Journal)
	if err != nil {
		return err
	}
	r.delivery, err = journal.StartDelivery(host, j, r.next, r.set.Logger)
	return err
}

// Shutdown finishes the delivery under way (the journal drains, bounded by
// ctx and its drain_timeout) and stops; safe without Start.
func (r *journalReceiver) Shutdown(ctx context.Context) error {
	r.delivery.Stop(ctx, r.set.Logger)
	r.delivery = nil
	return nil
}
