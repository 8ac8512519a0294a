package journalextension

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/batchaudit/batchaudit/extension/journalextension/internal/wal"
	"github.com/batchaudit/batchaudit/journal"
)

var protoUnmarshaler = &plog.ProtoUnmarshaler{}

// Attach claims delivery for next. The loop it returns sends the journal's
// records through next, in order, until ctx is done or a drain completed. A
// delivery that next refuses is rolled back: the state returns to the last
// checkpoint, its owners reload, and the records after the checkpoint are
// delivered again, so every record affects the state exactly once. After a
// clean stop the final position is checkpointed.
func (j *journalExt) Attach(next consumer.Logs) (func(ctx context.Context) error, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	switch {
	case j.log == nil && j.kafka == nil:
		return nil, errors.New("journal: not started")
	case j.attached:
		return nil, errors.New("journal: another receiver already delivers from this journal; give each receiver its own journal")
	}
	j.attached = true
	pos := j.checkpoint
	return func(ctx context.Context) error {
		j.delivering.Lock()
		defer j.delivering.Unlock()
		if j.kafka != nil {
			return j.kafka.deliver(ctx, next)
		}
		d := &delivery{j: j, next: next, replayEnd: j.log.End(), delivered: pos}
		return d.run(ctx, pos)
	}, nil
}

type delivery struct {
	j    *journalExt
	next consumer.Logs
	// replayEnd: records before it may have been delivered before; a
	// delivery starting before it is a replay even if it reaches past it.
	replayEnd int64
	delivered int64
	r         *wal.Reader
}

func (d *delivery) run(ctx context.Context, pos int64) error {
	j := d.j
	var err error
	if d.r, err = j.log.NewReader(pos); err != nil {
		return err
	}
	defer func() { d.r.Close() }()
	lastCheckpoint := time.Now()
	backoff := j.cfg.RetryInterval
	clean := true
	for ctx.Err() == nil {
		if j.drainReached(d.r.Pos()) {
			break
		}
		if !j.log.Wait(ctx, d.r.Pos(), j.cfg.TickInterval) {
			if ctx.Err() == nil && !j.draining() {
				// Idle: journal the passing of time, so time-driven work
				// happens at a recorded time and replays identically.
				if err := j.log.Append(ctx, nil); err != nil && !errors.Is(err, wal.ErrFull) && ctx.Err() == nil {
					j.logger.Warn("Journal: could not append a tick", zap.Error(err))
				}
			}
			continue
		}
		ld, info, n, err := d.read()
		if err != nil {
			// A record that passed its checksum but does not decode, or an
			// unreadable file: delivering past it would lose it silently.
			j.logger.Error("Journal: delivery stopped on an unreadable record; nothing after it is delivered until this is fixed",
				zap.Int64("offset", d.r.Pos()), zap.Error(err))
			return err
		}
		if err = d.next.ConsumeLogs(journal.NewContext(ctx, info), ld); err == nil && needsCheckpoint(j, lastCheckpoint) {
			err = d.checkpoint(info.Offset)
			lastCheckpoint = time.Now()
		}
		if err != nil {
			clean = false
			if ctx.Err() != nil {
				break
			}
			j.logger.Warn("Journal: delivery failed; the state is rolled back to the last checkpoint and the records after it are delivered again",
				zap.Error(err), zap.Duration("retry_in", backoff), zap.Int64("checkpoint", j.position()))
			if !sleep(ctx, backoff) {
				break
			}
			backoff = min(2*backoff, j.cfg.MaxRetryInterval)
			d.replayEnd = max(d.replayEnd, info.Offset)
			if !d.rewind(ctx) {
				break
			}
			continue
		}
		clean, backoff = true, j.cfg.RetryInterval
		d.delivered = info.Offset
		j.setDelivered(info.Offset)
		j.tb.JournalDelivered.Add(ctx, int64(n))
	}
	if clean && d.delivered > j.position() {
		if err := d.checkpoint(d.delivered); err != nil {
			return fmt.Errorf("journal: final checkpoint: %w", err)
		}
	}
	if j.drainReached(d.r.Pos()) {
		close(j.drained)
	}
	return nil
}

// Drain waits until delivery reached the end of the journal as of now.
func (j *journalExt) Drain(ctx context.Context) error {
	j.mu.Lock()
	if !j.attached || (j.log == nil && j.kafka == nil) {
		j.mu.Unlock()
		return nil
	}
	if j.kafka != nil {
		// Kafka keeps what is not delivered yet: finish the delivery
		// under way, checkpoint, leave the group.
		if j.drainTo < 0 {
			j.drainTo = 0
		}
		if j.wake != nil {
			j.wake()
		}
		j.mu.Unlock()
		select {
		case <-j.drained:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("journal: the delivery under way did not finish before the shutdown deadline: %w", ctx.Err())
		}
	}
	if j.drainTo < 0 {
		j.drainTo = j.log.End()
	}
	target := j.drainTo
	j.mu.Unlock()
	j.log.Wake()
	if j.cfg.DrainTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, j.cfg.DrainTimeout)
		defer cancel()
	}
	select {
	case <-j.drained:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("journal: delivery did not reach offset %d before the drain deadline (at %d, checkpointed %d); "+
			"the rest is delivered after the next start", target, j.deliveredPos(), j.position())
	}
}

func (j *journalExt) draining() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.drainTo >= 0
}

func (j *journalExt) drainReached(pos int64) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.drainTo >= 0 && pos >= j.drainTo
}

func needsCheckpoint(j *journalExt, last time.Time) bool {
	return time.Since(last) >= j.cfg.CheckpointInterval || int64(j.state.dirtyBytes()) >= j.cfg.CheckpointMiB<<20
}

// read takes the next records, up to max_delivery_events log records, as one
// delivery; its time is the append time of the last record.
func (d *delivery) read() (plog.Logs, journal.Info, int, error) {
	ld := plog.NewLogs()
	n := 0
	start := d.r.Pos()
	var last wal.Record
	for n < d.j.cfg.MaxDeliveryEvents {
		rec, ok, err := d.r.Next()
		if err != nil {
			return ld, journal.Info{}, 0, err
		}
		if !ok {
			break
		}
		last = rec
		if len(rec.Payload) == 0 {
			continue // a tick: only time passes
		}
		part, err := protoUnmarshaler.UnmarshalLogs(rec.Payload)
		if err != nil {
			return ld, journal.Info{}, 0, fmt.Errorf("journal: record at offset %d does not decode: %w", rec.Offset, err)
		}
		n += part.LogRecordCount()
		part.ResourceLogs().MoveAndAppendTo(ld.ResourceLogs())
	}
	return ld, journal.Info{Offset: d.r.Pos(), Time: last.Time, Replay: start < d.replayEnd}, n, nil
}

// checkpoint commits the state with pos and lets the journal drop what is
// before pos.
func (d *delivery) checkpoint(pos int64) error {
	j := d.j
	began := time.Now()
	if err := j.state.commit(pos, j.cfg.Fsync); err != nil {
		return err
	}
	j.mu.Lock()
	j.checkpoint = pos
	j.mu.Unlock()
	j.tb.JournalCheckpointDuration.Record(context.Background(), time.Since(began).Seconds())
	if err := j.log.Release(pos); err != nil {
		j.logger.Warn("Journal: could not delete delivered segments", zap.Error(err))
	}
	return nil
}

// rewind rolls the state back to the last checkpoint, lets the owners
// reload, and restarts reading there. An owner that cannot reload would
// go on from state that no longer matches the checkpoint, so nothing is
// delivered until every owner reloaded; false means ctx ended first.
func (d *delivery) rewind(ctx context.Context) bool {
	j := d.j
	if !j.rollback(ctx, "pipeline_error") {
		return false
	}
	d.r.Close()
	r, err := j.log.NewReader(j.position())
	if err != nil {
		// The checkpointed position is always kept; this is a bug.
		panic(fmt.Sprintf("journal: cannot reread from the checkpoint: %v", err))
	}
	d.r = r
	return true
}

// rollback returns the state to the last checkpoint and has its owners
// reload, retrying (with backoff) until every owner did, or ctx ends
// (false).
func (j *journalExt) rollback(ctx context.Context, reason string) bool {
	for backoff := j.cfg.RetryInterval; ; backoff = min(2*backoff, j.cfg.MaxRetryInterval) {
		j.state.rollback()
		err := j.state.reset(ctx)
		if err == nil {
			break
		}
		reason = "reset_error"
		j.logger.Error("Journal: a state owner could not reload after the rollback; nothing is delivered until it does",
			zap.Error(err), zap.Duration("retry_in", backoff))
		if !sleep(ctx, backoff) {
			j.tb.JournalRewinds.Add(context.WithoutCancel(ctx), 1, metric.WithAttributes(attribute.String("reason", reason)))
			return false
		}
	}
	j.tb.JournalRewinds.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", reason)))
	return true
}

func (j *journalExt) setDelivered(pos int64) {
	j.mu.Lock()
	j.delivered = pos
	j.mu.Unlock()
}

func (j *journalExt) deliveredPos() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.delivered
}

func (j *journalExt) position() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.checkpoint
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
