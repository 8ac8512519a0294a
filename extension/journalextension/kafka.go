package journalextension

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.uber.org/zap"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/internal/kafkaclient"
	"github.com/batchaudit/batchaudit/journal"
)

// The Kafka source: a partition of the events topic is a journal, its
// offset the position (docs/scale-out.md). One goroutine polls the
// consumer group and delivers each partition's records in offset order. A
// checkpoint produces the state written since the last one to the
// compacted changelog topic (same partition) and commits the consumer
// offsets in one Kafka transaction, then writes it to the local Pebble
// cache. A failed delivery rolls the state back and rewinds every partition
// to its checkpoint, like the local journal. Rebalances happen only between
// deliveries (BlockRebalanceOnPoll); when the group wants one, the work
// delivered so far is checkpointed first, so a move replays nothing. A
// partition the collector takes over is restored from its changelog before
// its first delivery.

// kafkaSource is the journal's Kafka source; its fields are used by the
// delivery goroutine only, except events (the group's callbacks).
type kafkaSource struct {
	j         *journalExt
	cfg       *KafkaConfig
	logger    *zap.Logger
	changelog string
	txnID     string

	sess *kgo.GroupTransactSession
	// txnOpen: a transaction was begun and not ended for sure (its end
	// failed); it is aborted before the next one begins.
	txnOpen bool
	parts   map[int32]*partition
	// lastCheckpoint is when the last checkpoint committed; progress is
	// whether anything was delivered since.
	lastCheckpoint time.Time
	progress       bool

	evMu     sync.Mutex
	revoked  []int32
	assigned []int32
	lost     bool
	// wanted: a rebalance waits for this collector to allow it.
	wanted bool
	// wake interrupts a poll (a rebalance is wanted, or a drain).
	wake context.CancelFunc
}

// partition is the delivery state of an owned partition.
type partition struct {
	restored bool
	// claimed: the next delivery is the first since the partition came to
	// this collector.
	claimed bool
	// time is the journal time of the last delivered record: the record
	// timestamps (set by the producer), never going backwards.
	time time.Time
	// checkpointed is where delivery restarts after a rollback: the offset
	// the last checkpoint committed, or the first record fetched since the
	// claim (-1: none yet). delivered is the offset after the last
	// delivered record.
	checkpointed, delivered int64
	// replayTo: records below it may have been delivered before.
	replayTo int64
	// active is when a record of the partition was last delivered or a
	// tick produced for it.
	active time.Time
}

// transactionalID is the configured id, or one that is unique per host and
// journal directory and stable across restarts.
func transactionalID(cfg *KafkaConfig, dir string) string {
	if cfg.TransactionalID != "" {
		return cfg.TransactionalID
	}
	host, _ := os.Hostname()
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	sum := sha256.Sum256([]byte(abs))
	return fmt.Sprintf("%s-%s-%s", cfg.Group, host, hex.EncodeToString(sum[:4]))
}

func newKafkaSource(j *journalExt, cfg *KafkaConfig) *kafkaSource {
	return &kafkaSource{
		j: j, cfg: cfg, logger: j.logger, changelog: cfg.Topic + "-state",
		txnID: transactionalID(cfg, j.cfg.Directory), parts: map[int32]*partition{},
	}
}

// deliver runs until ctx is done or a drain completed.
func (k *kafkaSource) deliver(ctx context.Context, next consumer.Logs) error {
	if err := k.setup(ctx); err != nil {
		if k.j.draining() {
			close(k.j.drained)
		}
		if ctx.Err() != nil || k.j.draining() {
			return nil
		}
		return err
	}
	defer func() {
		// Leaving the group hands the partitions to the others at once.
		if k.sess != nil {
			k.sess.CloseAllowingRebalance()
		}
	}()
	k.lastCheckpoint = time.Now()
	backoff := k.j.cfg.RetryInterval
	clean := true
	for ctx.Err() == nil && !k.j.draining() {
		fs := k.poll(ctx)
		if fs.IsClientClosed() {
			break
		}
		k.fetchErrors(fs)
		if k.rebalanced(ctx) {
			// Rolled back to the checkpoint: what was fetched before is
			// fetched again.
			fs = kgo.Fetches{}
		}
		err := k.deliverFetches(ctx, fs, next)
		if err == nil && k.checkpointDue() {
			err = k.checkpoint(ctx)
		}
		if err != nil {
			clean = false
			if ctx.Err() != nil {
				break
			}
			k.logger.Warn("Journal: delivery failed; the state is rolled back to the last checkpoint and the records after it are delivered again",
				zap.Error(err), zap.Duration("retry_in", backoff))
			if errors.Is(err, errSessionStuck) {
				if err := k.renew(ctx); err != nil {
					if ctx.Err() != nil || k.j.draining() {
						break
					}
					return err
				}
			} else {
				k.rewind(ctx, "pipeline_error")
				// The group may rebalance meanwhile.
				k.sess.AllowRebalance()
			}
			if !sleep(ctx, backoff) {
				break
			}
			backoff = min(2*backoff, k.j.cfg.MaxRetryInterval)
			continue
		}
		clean, backoff = true, k.j.cfg.RetryInterval
		k.sess.AllowRebalance()
	}
	if clean && k.progress {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), k.cfg.TransactionTimeout)
		err := k.checkpoint(fctx)
		cancel()
		if err != nil {
			k.logger.Warn("Journal: final checkpoint failed; the partitions' next owner delivers the records since the last one again", zap.Error(err))
		}
	}
	if k.j.draining() {
		close(k.j.drained)
	}
	return nil
}

// setup creates the topics if missing and joins the group, retrying while
// the brokers are unreachable.
func (k *kafkaSource) setup(ctx context.Context) error {
	opts := append(k.cfg.Options(k.logger),
		kgo.ConsumerGroup(k.cfg.Group),
		kgo.ConsumeTopics(k.cfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.TransactionalID(k.txnID),
		kgo.TransactionTimeout(k.cfg.TransactionTimeout),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.SessionTimeout(k.cfg.SessionTimeout),
		kgo.RebalanceTimeout(k.cfg.RebalanceTimeout),
		kgo.HeartbeatInterval(k.cfg.HeartbeatInterval),
		kgo.FetchMaxWait(time.Second),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			k.event(func() { k.assigned = append(k.assigned, m[k.cfg.Topic]...) })
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			k.event(func() { k.revoked = append(k.revoked, m[k.cfg.Topic]...) })
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			k.event(func() { k.lost, k.revoked = true, append(k.revoked, m[k.cfg.Topic]...) })
		}),
		kgo.OnPartitionsCallbackBlocked(func(context.Context, *kgo.Client) {
			k.event(func() {
				k.wanted = true
				if k.wake != nil {
					k.wake()
				}
			})
		}),
	)
	for backoff := k.j.cfg.RetryInterval; ; backoff = min(2*backoff, k.j.cfg.MaxRetryInterval) {
		err := k.ensureTopics(ctx)
		if err == nil {
			k.sess, err = kgo.NewGroupTransactSession(opts...)
		}
		if err == nil {
			k.logger.Info("Journal: consuming from Kafka", zap.String("topic", k.cfg.Topic), zap.String("group", k.cfg.Group),
				zap.String("changelog", k.changelog), zap.String("transactional_id", k.txnID))
			return nil
		}
		var fatal *topicMismatch
		if errors.As(err, &fatal) {
			return err
		}
		k.logger.Warn("Journal: Kafka not ready; retrying", zap.Error(err), zap.Duration("retry_in", backoff))
		if !sleep(ctx, backoff) || k.j.draining() {
			return errors.New("journal: stopped before Kafka was ready")
		}
	}
}

type topicMismatch struct{ msg string }

func (e *topicMismatch) Error() string { return e.msg }

// ensureTopics creates the events topic and its changelog (compacted, as
// many partitions: the state of partition p is in changelog partition p).
func (k *kafkaSource) ensureTopics(ctx context.Context) error {
	cl, err := kgo.NewClient(k.cfg.Options(k.logger)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	n, err := kafkaclient.EnsureTopic(tctx, adm, k.cfg.Topic, k.cfg.Partitions, k.cfg.ReplicationFactor, nil)
	if err != nil {
		return err
	}
	compact := "compact"
	m, err := kafkaclient.EnsureTopic(tctx, adm, k.changelog, n, k.cfg.ReplicationFactor, map[string]*string{"cleanup.policy": &compact})
	if err != nil {
		return err
	}
	if m != n {
		return &topicMismatch{fmt.Sprintf("journal: topic %s has %d partitions but its changelog %s has %d: the state of partition p must be in changelog partition p; "+
			"recreate the changelog with %d partitions (partition counts cannot change once used)", k.cfg.Topic, n, k.changelog, m, n)}
	}
	return nil
}

func (k *kafkaSource) event(fn func()) {
	k.evMu.Lock()
	defer k.evMu.Unlock()
	fn()
}

// poll waits for records, at most until a tick or checkpoint may be due, a
// rebalance is wanted or a drain begins.
func (k *kafkaSource) poll(ctx context.Context) kgo.Fetches {
	wait := min(k.j.cfg.TickInterval, k.j.cfg.CheckpointInterval) / 2
	pctx, cancel := context.WithTimeout(ctx, max(wait, 10*time.Millisecond))
	defer cancel()
	k.event(func() {
		k.wake = cancel
		if k.wanted {
			cancel()
		}
	})
	k.j.mu.Lock()
	k.j.wake = cancel
	k.j.mu.Unlock()
	if k.j.draining() {
		cancel()
	}
	fs := k.sess.PollRecords(pctx, 4096)
	k.event(func() { k.wake = nil })
	k.j.mu.Lock()
	k.j.wake = nil
	k.j.mu.Unlock()
	return fs
}

// fetchErrors logs what the client could not fetch (it retries by itself).
func (k *kafkaSource) fetchErrors(fs kgo.Fetches) {
	fs.EachError(func(topic string, p int32, err error) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return
		}
		k.logger.Warn("Journal: fetch error", zap.String("topic", topic), zap.Int32("partition", p), zap.Error(err))
	})
}

// rebalanced applies the group's changes since the last poll. Revoked or
// lost partitions are dropped (state in memory and in the local cache), and
// everything since the checkpoint is rolled back, since a member that gave
// up partitions cannot commit what it delivered since (usually nothing: a
// wanted rebalance is preceded by a checkpoint); the owners of the state
// reload. Newly assigned partitions are restored from the changelog before
// their first delivery. It reports whether it rolled back.
func (k *kafkaSource) rebalanced(ctx context.Context) bool {
	k.evMu.Lock()
	revoked, assigned, lost := k.revoked, k.assigned, k.lost
	k.revoked, k.assigned, k.lost = nil, nil, false
	if len(revoked) > 0 || len(assigned) > 0 || lost {
		k.wanted = false
	}
	k.evMu.Unlock()
	rolledBack := len(revoked) > 0 || lost
	if rolledBack {
		k.logger.Info("Journal: partitions revoked", zap.Int32s("partitions", revoked), zap.Bool("lost", lost))
		k.release(revoked)
		// The session aborts a commit after a revocation; abort now, which
		// also returns it to the committed offsets, and rewind the kept
		// partitions the same way. (If Kafka is away, the next
		// checkpoint aborts instead and rolls back then.)
		actx, cancel := context.WithTimeout(ctx, k.cfg.TransactionTimeout)
		if err := k.begin(actx); err == nil {
			if err := k.abort(actx); err != nil {
				k.logger.Warn("Journal: aborting after a revocation", zap.Error(err))
			}
		}
		cancel()
		k.rewind(ctx, "rebalance")
	}
	if len(assigned) > 0 {
		// The owners of the state hold nothing of these partitions in
		// memory (dropped when they left, or never had them): they load
		// them at their first delivery, after the restore.
		k.logger.Info("Journal: partitions assigned", zap.Int32s("partitions", assigned))
	}
	now := time.Now()
	for _, p := range assigned {
		k.parts[p] = &partition{claimed: true, checkpointed: -1, delivered: -1, replayTo: -1, active: now}
	}
	return rolledBack
}

// release forgets partitions this collector no longer owns: their delivery
// state and their cached state.
func (k *kafkaSource) release(ps []int32) {
	for _, p := range ps {
		delete(k.parts, p)
		if err := k.j.state.dropPartition(p); err != nil {
			k.logger.Warn("Journal: could not drop a released partition's cached state", zap.Int32("partition", p), zap.Error(err))
		}
	}
}

// errSessionStuck: a checkpoint did not end within the transaction timeout.
var errSessionStuck = errors.New("journal: the Kafka session did not end the checkpoint transaction within transaction_timeout")

// renew replaces a session that stopped answering with a new one, as a
// restart would: every partition is released and the state rolled back to
// the checkpoint; the new session's transactional id fences the old
// transaction, and the group hands the partitions out again, each restored
// from its changelog before its first delivery.
func (k *kafkaSource) renew(ctx context.Context) error {
	k.logger.Warn("Journal: the Kafka session is closed and the group joined again; the partitions are restored from their changelogs")
	k.sess.CloseAllowingRebalance()
	k.sess = nil
	k.evMu.Lock()
	k.revoked, k.assigned, k.lost, k.wanted = nil, nil, false, false
	k.evMu.Unlock()
	k.txnOpen, k.progress = false, false
	k.release(slices.Collect(maps.Keys(k.parts)))
	if !k.j.rollback(ctx, "session_renewed") {
		return ctx.Err()
	}
	return k.setup(ctx)
}

// rewind rolls the state back to the last checkpoint, lets its owners
// reload, and makes every partition deliver again from its checkpoint.
func (k *kafkaSource) rewind(ctx context.Context, reason string) {
	// Owners that cannot reload keep delivery waiting here (ctx ending
	// stops it; the partitions' records are then delivered again by their
	// next owner or start).
	k.j.rollback(ctx, reason)
	set := map[int32]kgo.EpochOffset{}
	for p, pt := range k.parts {
		if pt.checkpointed < 0 {
			continue // nothing fetched since the claim
		}
		set[p] = kgo.EpochOffset{Epoch: -1, Offset: pt.checkpointed}
		pt.replayTo = max(pt.replayTo, pt.delivered)
		pt.delivered = pt.checkpointed
		if pt.restored {
			t, err := k.partitionTime(p)
			if err != nil {
				// Unreadable cache: read the changelog again.
				pt.restored = false
			}
			pt.time = t
		}
	}
	if len(set) > 0 {
		k.sess.Client().SetOffsets(map[string]map[int32]kgo.EpochOffset{k.cfg.Topic: set})
	}
	k.progress = false
}

// deliverFetches delivers the fetched records, per partition in offset
// order, up to max_delivery_events log records per pipeline call.
func (k *kafkaSource) deliverFetches(ctx context.Context, fs kgo.Fetches, next consumer.Logs) error {
	var order []int32
	recs := map[int32][]*kgo.Record{}
	fs.EachPartition(func(fp kgo.FetchTopicPartition) {
		if fp.Topic != k.cfg.Topic || len(fp.Records) == 0 {
			return
		}
		pt := k.parts[fp.Partition]
		if pt == nil {
			return // not ours (any more): its owner delivers it
		}
		if pt.checkpointed < 0 {
			pt.checkpointed = fp.Records[0].Offset
		}
		if _, ok := recs[fp.Partition]; !ok {
			order = append(order, fp.Partition)
		}
		recs[fp.Partition] = append(recs[fp.Partition], fp.Records...)
	})
	for _, p := range order {
		if err := k.deliverPartition(ctx, p, recs[p], next); err != nil {
			return err
		}
	}
	return nil
}

func (k *kafkaSource) deliverPartition(ctx context.Context, p int32, recs []*kgo.Record, next consumer.Logs) error {
	pt := k.parts[p]
	if !pt.restored {
		if err := k.restore(ctx, p); err != nil {
			return fmt.Errorf("journal: restore partition %d from %s: %w", p, k.changelog, err)
		}
		pt.restored = true
		// Owners that loaded this partition's keys before (from the empty
		// cache) load them again.
		if err := k.j.state.reset(ctx); err != nil {
			return fmt.Errorf("journal: a state owner could not reload after restoring partition %d: %w", p, err)
		}
		t, err := k.partitionTime(p)
		if err != nil {
			return err
		}
		pt.time = t
	}
	for len(recs) > 0 {
		ld := plog.NewLogs()
		n, used := 0, 0
		t := pt.time
		for _, r := range recs {
			if n >= k.j.cfg.MaxDeliveryEvents {
				break
			}
			used++
			if r.Timestamp.After(t) {
				t = r.Timestamp
			}
			if len(r.Value) == 0 {
				continue // a tick: only time passes
			}
			part, err := protoUnmarshaler.UnmarshalLogs(r.Value)
			if err != nil {
				part = undecodable(r, err)
				k.logger.Error("Journal: a Kafka record does not decode; it is delivered as an invalid event, to be kept as a dead letter",
					zap.Int32("partition", p), zap.Int64("offset", r.Offset), zap.Error(err))
			}
			n += part.LogRecordCount()
			part.ResourceLogs().MoveAndAppendTo(ld.ResourceLogs())
		}
		// Replay when the delivery starts below replayTo, even if it also
		// carries records never delivered before.
		last := recs[used-1].Offset
		info := journal.Info{Partition: p, Claimed: pt.claimed, Offset: last + 1, Time: t, Replay: recs[0].Offset < pt.replayTo}
		if err := k.setPartitionTime(p, t); err != nil {
			return err
		}
		if err := next.ConsumeLogs(journal.NewContext(ctx, info), ld); err != nil {
			return err
		}
		pt.claimed, pt.time, pt.delivered, pt.active = false, t, last+1, time.Now()
		k.progress = true
		k.j.tb.JournalDelivered.Add(ctx, int64(n))
		recs = recs[used:]
	}
	return nil
}

// undecodable turns a record that is not a protobuf request into one
// invalid event carrying it (base64) and the reason: the audit exporter
// keeps it as a dead letter, so it is neither lost silently nor blocking
// the partition. Its id is the record's place, so a redelivery is
// recognized.
func undecodable(r *kgo.Record, err error) plog.Logs {
	ld := plog.NewLogs()
	lr := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	lr.SetTimestamp(pcommon.NewTimestampFromTime(r.Timestamp))
	lr.Attributes().PutStr(auditevent.AttrEventID, fmt.Sprintf("kafka:%s:%d:%d", r.Topic, r.Partition, r.Offset))
	lr.Body().SetStr(fmt.Sprintf("undecodable Kafka record (topic %s, partition %d, offset %d): %v; value (base64): %s",
		r.Topic, r.Partition, r.Offset, err, base64.StdEncoding.EncodeToString(r.Value)))
	return ld
}

func (k *kafkaSource) partitionTime(p int32) (time.Time, error) {
	v, err := k.j.state.getKey(partitionPrefix(p) + timeKey)
	if err != nil || len(v) != 8 {
		return time.Time{}, err
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(v))), nil
}

func (k *kafkaSource) setPartitionTime(p int32, t time.Time) error {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(t.UnixNano()))
	return k.j.state.putKey(partitionPrefix(p)+timeKey, v[:])
}

// checkpointDue: the checkpoint interval passed with something delivered,
// the state grew past checkpoint_mib, a tick is due, or a rebalance waits.
func (k *kafkaSource) checkpointDue() bool {
	k.evMu.Lock()
	wanted := k.wanted
	k.evMu.Unlock()
	if wanted && k.progress {
		return true
	}
	if k.progress && time.Since(k.lastCheckpoint) >= k.j.cfg.CheckpointInterval {
		return true
	}
	if int64(k.j.state.dirtyBytes()) >= k.j.cfg.CheckpointMiB<<20 {
		return true
	}
	return len(k.idle()) > 0
}

// idle lists the owned partitions with nothing delivered or ticked for a
// tick interval: they get a tick, so time moves on for them too.
func (k *kafkaSource) idle() []int32 {
	var out []int32
	for p, pt := range k.parts {
		if time.Since(pt.active) >= k.j.cfg.TickInterval {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// checkpoint commits, in one transaction, the state written since the last
// checkpoint (to the changelog), the ticks of idle partitions and the
// offsets after everything delivered; then it writes the state to the local
// cache. When the transaction does not commit, nothing of it counts and the
// caller rolls back.
func (k *kafkaSource) checkpoint(ctx context.Context) error {
	// Bounded: past the transaction timeout the broker aborts the
	// transaction anyway, and an unbounded End can wait forever (seen after
	// a broker restart: End waited for a heartbeat from the group, whose
	// rebalance waited for this goroutine to allow it). The caller renews
	// the session then.
	tctx, cancel := context.WithTimeout(ctx, k.cfg.TransactionTimeout)
	defer cancel()
	err := k.commit(tctx)
	if err != nil && tctx.Err() != nil && ctx.Err() == nil {
		return fmt.Errorf("%w: %w", errSessionStuck, err)
	}
	return err
}

func (k *kafkaSource) commit(ctx context.Context) error {
	began := time.Now()
	ticks := k.idle()
	var recs []*kgo.Record
	for p, cs := range k.j.state.changes() {
		for _, c := range cs {
			recs = append(recs, &kgo.Record{Topic: k.changelog, Partition: p, Key: []byte(c.key), Value: c.value})
		}
	}
	for _, p := range ticks {
		recs = append(recs, &kgo.Record{Topic: k.cfg.Topic, Partition: p, Value: []byte{}})
	}
	if err := k.begin(ctx); err != nil {
		return fmt.Errorf("journal: begin a checkpoint transaction: %w", err)
	}
	if err := k.sess.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		if aerr := k.abort(ctx); aerr != nil {
			err = errors.Join(err, aerr)
		}
		return fmt.Errorf("journal: checkpoint: produce the state to %s: %w", k.changelog, err)
	}
	committed, err := k.sess.End(ctx, kgo.TryCommit)
	if err != nil {
		return fmt.Errorf("journal: checkpoint transaction: %w", err)
	}
	k.txnOpen = false
	if !committed {
		return errors.New("journal: checkpoint transaction aborted (the group rebalanced or this collector was fenced)")
	}
	// Kafka holds the state now; the cache follows. A cache that cannot be
	// written is read again from the changelog.
	if err := k.j.state.flush(false, nil); err != nil {
		k.logger.Warn("Journal: the local state cache could not be written; the owned partitions are restored from the changelog", zap.Error(err))
		for _, pt := range k.parts {
			pt.restored = false
		}
	}
	now := time.Now()
	for _, p := range ticks {
		k.parts[p].active = now
	}
	for _, pt := range k.parts {
		if pt.delivered >= 0 {
			pt.checkpointed = pt.delivered
		}
	}
	k.lastCheckpoint, k.progress = now, false
	k.event(func() { k.wanted = false })
	k.j.tb.JournalCheckpointDuration.Record(ctx, time.Since(began).Seconds())
	return nil
}

// begin begins a transaction, after aborting one whose end failed.
func (k *kafkaSource) begin(ctx context.Context) error {
	if k.txnOpen {
		if err := k.abort(ctx); err != nil {
			return fmt.Errorf("abort the previous transaction: %w", err)
		}
	}
	if err := k.sess.Begin(); err != nil {
		return err
	}
	k.txnOpen = true
	return nil
}

// abort ends the transaction under way with an abort; one that fails is
// retried before the next transaction begins.
func (k *kafkaSource) abort(ctx context.Context) error {
	_, err := k.sess.End(ctx, kgo.TryAbort)
	k.txnOpen = err != nil
	return err
}

// restore reads partition p's changelog, up to its last stable offset, into
// the local cache.
func (k *kafkaSource) restore(ctx context.Context, p int32) error {
	began := time.Now()
	if err := k.j.state.dropPartition(p); err != nil {
		return err
	}
	end, err := k.stableEnd(ctx, p)
	if err != nil || end == 0 {
		return err
	}
	cl, err := kgo.NewClient(append(k.cfg.Options(k.logger),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{k.changelog: {p: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Commit markers are the last offsets before the end: kept, so
		// the read knows it reached it.
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(200*time.Millisecond),
	)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	var cs []change
	n := 0
	for pos := int64(0); pos < end; {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			pos = r.Offset + 1
			if r.Offset >= end || r.Attrs.IsControl() {
				return
			}
			cs = append(cs, change{key: string(r.Key), value: r.Value})
			n++
		})
		if len(cs) >= 10_000 || pos >= end {
			if err := k.j.state.restore(p, cs); err != nil {
				return err
			}
			cs = cs[:0]
		}
	}
	k.logger.Info("Journal: partition state restored from the changelog", zap.Int32("partition", p),
		zap.Int("records", n), zap.Int64("end_offset", end), zap.Duration("took", time.Since(began)))
	return nil
}

// stableEnd is the changelog partition's last stable offset: everything
// before it is committed or aborted.
func (k *kafkaSource) stableEnd(ctx context.Context, p int32) (int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.IsolationLevel = 1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = k.changelog
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition, rp.Timestamp = p, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, k.sess.Client())
	if err != nil {
		return 0, err
	}
	for _, t := range resp.Topics {
		for _, rp := range t.Partitions {
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				return 0, err
			}
			return rp.Offset, nil
		}
	}
	return 0, fmt.Errorf("no offset listed for %s partition %d", k.changelog, p)
}
