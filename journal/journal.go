// Package journal is the contract between batchaudit's durability spine (the
// journal extension) and the components around it. The receiver appends
// every accepted request to the journal once and acknowledges it; the
// journal then delivers its records, in order, through the pipeline. Stateful
// processors keep their state in the journal's storage client: their writes
// become durable together with the journal position they reflect
// (checkpoints), and after a crash or a failed delivery the journal rolls the
// state back to the last checkpoint and replays the records after it. For
// replay to decide exactly as the first delivery did, processors take time
// only from the delivery (Now) and never run timers of their own (Driven).
// See docs/performance.md.
package journal

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/collector/pdata/plog"
)

// ErrFull is returned by Append when delivery is too far behind (the
// journal's max_backlog): the receiver answers 503 with Retry-After.
var ErrFull = errors.New("the journal is full: delivery is behind (is the audit store reachable?)")

// Journal is implemented by the journal extension.
type Journal interface {
	// Append makes ld durable in the journal and returns once it is; ld is
	// not retained.
	Append(ctx context.Context, ld plog.Logs) error
	// Attach claims the journal's delivery for next (at most one per
	// journal) and returns the delivery loop, which runs until its ctx is
	// done or a Drain completed. Claiming is synchronous so that a Drain
	// right after it waits for the loop instead of finding no one attached.
	Attach(next consumer.Logs) (deliver func(ctx context.Context) error, err error)
	// Drain waits until everything appended so far is delivered, bounded
	// by ctx and the journal's drain timeout; what is left is delivered
	// after the next start. Deliver returns once the drain completed.
	Drain(ctx context.Context) error
}

// Info describes the journal records one pipeline call delivers.
type Info struct {
	// Partition is the partition the records come from: always 0 for the
	// local journal; the Kafka partition when the journal reads a Kafka
	// topic (docs/scale-out.md). Stateful processors keep their state per
	// partition (the journal's storage clients namespace keys by the
	// partition of the delivery in the context), and the audit exporter
	// can write each partition to its own stream.
	Partition int32
	// Claimed is set on the first delivery of a partition since this
	// collector took it over (started, or got it in a rebalance): what
	// others wrote for the partition since (in the audit store) must be
	// read again before writing.
	Claimed bool
	// Offset is the journal position after the delivered records.
	Offset int64
	// Time is the append time of the last delivered record. It is the
	// clock of stateful processors, so a replay decides as the first
	// delivery did. It never goes backwards.
	Time time.Time
	// Replay is set when the records may have been delivered before (after
	// a restart or a rolled-back delivery).
	Replay bool
}

type infoKey struct{}

// NewContext returns ctx carrying info.
func NewContext(ctx context.Context, info Info) context.Context {
	return context.WithValue(ctx, infoKey{}, info)
}

// FromContext returns the delivery info of ctx, if it comes from a journal.
func FromContext(ctx context.Context) (Info, bool) {
	info, ok := ctx.Value(infoKey{}).(Info)
	return info, ok
}

// PartitionOf is the partition of the journal delivery in ctx (0 outside
// one).
func PartitionOf(ctx context.Context) int32 {
	info, _ := FromContext(ctx)
	return info.Partition
}

// Now is the time of the journal delivery in ctx, or fallback() outside one.
func Now(ctx context.Context, fallback func() time.Time) time.Time {
	if info, ok := FromContext(ctx); ok {
		return info.Time
	}
	return fallback()
}

// Client is implemented by the journal's storage clients.
type Client interface {
	storage.Client
	// OnReset registers fn, called after the journal rolled the state
	// back to its last checkpoint (a delivery failed), or when partitions
	// moved to or from this collector: the owner drops what it keeps in
	// memory, for every partition, and reloads from the client before the
	// next delivery of a partition uses it.
	OnReset(fn func(context.Context) error)
}

// Driven reports whether c is a journal's storage client: its owner then
// runs time-driven work (expiry, settling) from deliveries instead of timers.
// Empty deliveries carry the time forward while no data arrives.
func Driven(c storage.Client) bool {
	_, ok := c.(Client)
	return ok
}

// OnReset registers fn with c when c is a journal's client; see Client.
func OnReset(c storage.Client, fn func(context.Context) error) {
	if jc, ok := c.(Client); ok {
		jc.OnReset(fn)
	}
}
