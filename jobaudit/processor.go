package jobaudit

import (
	"context"
	"errors"
	"sync"
	"time"

	sdklog "go.opentelemetry.io/otel/sdk/log"
)

// Processor is an SDK log processor for audit events. Unlike the SDK's
// BatchProcessor, which drops the oldest records when its queue is full, it
// never drops: a full batch is exported on the emitting goroutine, so a slow
// collector slows the job down instead of losing its audit trail. Records
// whose export failed are kept and sent again with the next batch;
// ForceFlush and Shutdown report the failure so the job can fail its run.
type Processor struct {
	exp      sdklog.Exporter
	size     int
	maxQueue int

	mu      sync.Mutex
	buf     []sdklog.Record
	lastErr error

	stop chan struct{}
	done chan struct{}
}

// NewProcessor returns a Processor that exports batches of size records, and
// whatever is buffered every interval.
func NewProcessor(exp sdklog.Exporter, size int, interval time.Duration) *Processor {
	if size <= 0 {
		size = 512
	}
	p := &Processor{exp: exp, size: size, maxQueue: 64 * size, stop: make(chan struct{}), done: make(chan struct{})}
	go p.loop(interval)
	return p
}

func (p *Processor) loop(interval time.Duration) {
	defer close(p.done)
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			_ = p.ForceFlush(context.Background())
		}
	}
}

// OnEmit buffers the record and exports when a batch is full.
func (p *Processor) OnEmit(ctx context.Context, r *sdklog.Record) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, r.Clone())
	if len(p.buf) < p.size {
		return nil
	}
	err := p.exportLocked(ctx)
	// Past maxQueue the job must not keep producing into memory: retry until
	// the collector takes the events or the context ends.
	for err != nil && len(p.buf) >= p.maxQueue && ctx.Err() == nil {
		time.Sleep(time.Second)
		err = p.exportLocked(ctx)
	}
	return err
}

func (p *Processor) exportLocked(ctx context.Context) error {
	if len(p.buf) == 0 {
		return nil
	}
	if err := p.exp.Export(ctx, p.buf); err != nil {
		p.lastErr = err
		return err
	}
	p.buf = p.buf[:0]
	p.lastErr = nil
	return nil
}

// Enabled reports that every record is processed.
func (p *Processor) Enabled(context.Context, sdklog.EnabledParameters) bool { return true }

// ForceFlush exports everything buffered.
func (p *Processor) ForceFlush(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.exportLocked(ctx); err != nil {
		return err
	}
	return p.exp.ForceFlush(ctx)
}

// Shutdown flushes and shuts the exporter down; it reports records that
// could not be delivered.
func (p *Processor) Shutdown(ctx context.Context) error {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
	err := p.ForceFlush(ctx)
	p.mu.Lock()
	n := len(p.buf)
	p.mu.Unlock()
	if n > 0 {
		err = errors.Join(err, errors.New("jobaudit: audit events could not be delivered"))
	}
	return errors.Join(err, p.exp.Shutdown(ctx))
}
