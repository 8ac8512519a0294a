package journal

import (
	"context"
	"fmt"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/consumer"
	"go.uber.org/zap"
)

// Lookup returns the journal extension id names.
func Lookup(host component.Host, id component.ID) (Journal, error) {
	ext, ok := host.GetExtensions()[id]
	if !ok {
		return nil, fmt.Errorf("journal extension %q not found (add it under extensions and service.extensions)", id)
	}
	j, ok := ext.(Journal)
	if !ok {
		return nil, fmt.Errorf("extension %q is not a journal", id)
	}
	return j, nil
}

// Delivery is a journal's delivery into a pipeline, run by the receiver
// that owns the pipeline's start.
type Delivery struct {
	j      Journal
	cancel context.CancelFunc
	done   chan struct{}
}

// StartDelivery attaches next to j and runs the delivery in the background
// until Stop. A delivery that stops on an error is logged and reported to
// the host as fatal: nothing after it would be delivered.
func StartDelivery(host component.Host, j Journal, next consumer.Logs, logger *zap.Logger) (*Delivery, error) {
	deliver, err := j.Attach(next)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Delivery{j: j, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(d.done)
		if err := deliver(ctx); err != nil {
			logger.Error("Delivery from the journal stopped", zap.Error(err))
			componentstatus.ReportStatus(host, componentstatus.NewFatalErrorEvent(err))
		}
	}()
	return d, nil
}

// Stop drains the journal (bounded by ctx and the journal's drain timeout;
// what is left is delivered after the next start, so this is a delay, not
// a loss), then stops delivery and waits for it. Safe on nil.
func (d *Delivery) Stop(ctx context.Context, logger *zap.Logger) {
	if d == nil {
		return
	}
	if err := d.j.Drain(ctx); err != nil {
		logger.Warn("Journal not drained at shutdown", zap.Error(err))
	}
	d.cancel()
	<-d.done
}
