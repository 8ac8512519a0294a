package journalextension

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/batchaudit/batchaudit/internal/kafkatest"
	"github.com/batchaudit/batchaudit/journal"
)

// The Kafka source against the real broker (make kafka-up): a topic per
// test, the counter of journal_test.go as the stateful processor (its
// count is per partition: the client namespaces keys by the delivery's
// partition), and a sink standing in for the store.

func kafkaTestConfig(t *testing.T, brokers []string, topic, group string, partitions int32) *Config {
	cfg := testConfig(t.TempDir())
	cfg.CheckpointInterval = 100 * time.Millisecond
	cfg.TickInterval = 300 * time.Millisecond
	cfg.MaxDeliveryEvents = 16
	cfg.DrainTimeout = 20 * time.Second
	k := defaultKafkaConfig()
	k.Brokers, k.Topic, k.Group, k.Partitions = brokers, topic, group, partitions
	k.SessionTimeout, k.HeartbeatInterval, k.TransactionTimeout = 6*time.Second, 200*time.Millisecond, 5*time.Second
	k.RebalanceTimeout = 20 * time.Second
	cfg.Kafka.GetOrInsertDefault()
	*cfg.Kafka.Get() = k
	require.NoError(t, cfg.Validate())
	return cfg
}

// produced records which partition each test record went to.
type produced struct {
	mu   sync.Mutex
	part map[string]int32
	per  map[int32]int
}

// produce sends n requests of one event each, ids prefix0..prefixN-1, keyed
// by one of twelve jobs, as the gateway's exporter does.
func produce(t *testing.T, brokers []string, topic, prefix string, n int, out *produced) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic), kgo.MetadataMinAge(100*time.Millisecond))
	require.NoError(t, err)
	defer cl.Close()
	var recs []*kgo.Record
	for i := range n {
		id := fmt.Sprintf("%s%04d", prefix, i)
		value, err := (&plog.ProtoMarshaler{}).MarshalLogs(request(id))
		require.NoError(t, err)
		recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprintf("job-%d", i%12)), Value: value})
	}
	// Held while producing: a delivery that looks a record up waits until
	// its partition is known.
	out.mu.Lock()
	defer out.mu.Unlock()
	require.NoError(t, cl.ProduceSync(context.Background(), recs...).FirstErr())
	if out.part == nil {
		out.part, out.per = map[string]int32{}, map[int32]int{}
	}
	for i, r := range recs {
		out.part[fmt.Sprintf("%s%04d", prefix, i)] = r.Partition
		out.per[r.Partition]++
	}
}

// orderSink checks what it is given: each delivery carries its partition,
// ids of a partition come in produce order (after a replay, from an earlier
// one on), times never go backwards per partition.
type orderSink struct {
	t    *testing.T
	next *sink
	want *produced

	mu      sync.Mutex
	last    map[int32]string
	times   map[int32]time.Time
	claimed map[int32]int
	block   chan struct{} // when set, deliveries with data wait for ctx (a hung store)
}

func (s *orderSink) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }

func (s *orderSink) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	info, ok := journal.FromContext(ctx)
	require.True(s.t, ok)
	s.mu.Lock()
	if s.last == nil {
		s.last, s.times, s.claimed = map[int32]string{}, map[int32]time.Time{}, map[int32]int{}
	}
	if info.Claimed {
		s.claimed[info.Partition]++
		delete(s.last, info.Partition) // a new owner may start before the old one stopped
	}
	assert.False(s.t, info.Time.Before(s.times[info.Partition]), "time goes forward in partition %d", info.Partition)
	s.times[info.Partition] = info.Time
	block := s.block
	for _, rl := range ld.ResourceLogs().All() {
		for _, sl := range rl.ScopeLogs().All() {
			for _, lr := range sl.LogRecords().All() {
				v, _ := lr.Attributes().Get("id")
				id := v.Str()
				s.want.mu.Lock()
				p := s.want.part[id]
				s.want.mu.Unlock()
				assert.Equal(s.t, p, info.Partition, "event %s is delivered with its partition", id)
				if prev, ok := s.last[p]; ok && !info.Replay {
					assert.Less(s.t, prev, id, "partition %d in offset order", p)
				}
				s.last[p] = id
			}
		}
	}
	s.mu.Unlock()
	if block != nil && ld.LogRecordCount() > 0 {
		<-ctx.Done()
		return ctx.Err()
	}
	return s.next.ConsumeLogs(ctx, ld)
}

// changelogCounts reads the counter's value per partition from the
// changelog (read committed): what a new owner would restore.
func changelogCounts(t *testing.T, brokers []string, topic string) map[int32]int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic+"-state"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	require.NoError(t, err)
	defer cl.Close()
	out := map[int32]int{}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Key) == "processor/counter/n" && len(r.Value) == 8 {
				out[r.Partition] = int(binary.BigEndian.Uint64(r.Value))
			}
		})
		// Commit markers are not returned: read until nothing comes.
		if fs.NumRecords() == 0 {
			break
		}
	}
	return out
}

// kafkaJournal starts a journal with a Kafka source, shut down at cleanup
// (after its delivery stopped).
func kafkaJournal(t *testing.T, cfg *Config) *journalExt {
	j := startJournal(t, cfg)
	t.Cleanup(func() { require.NoError(t, j.Shutdown(context.Background())) })
	return j
}

func startDelivery(t *testing.T, j *journalExt, next consumer.Logs) (drain func(), crash func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- deliverAll(ctx, j, next) }()
	stopped := false
	t.Cleanup(func() {
		if !stopped { // the test failed before stopping it
			cancel()
			<-done
		}
	})
	drain = func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer dcancel()
		require.NoError(t, j.Drain(dctx))
		require.NoError(t, <-done)
		stopped = true
		cancel()
	}
	crash = func() {
		cancel()
		require.NoError(t, <-done)
		stopped = true
	}
	return drain, crash
}

func TestKafkaDeliversPartitionsInOrderWithState(t *testing.T) {
	brokers := kafkatest.Require(t)
	topic := kafkatest.Unique(t, "j")
	kafkatest.DeleteTopicsAtCleanup(t, topic, topic+"-state")
	ctx := context.Background()
	j := kafkaJournal(t, kafkaTestConfig(t, brokers, topic, kafkatest.Unique(t, "g"), 3))
	assert.ErrorContains(t, j.Append(ctx, request("x")), "takes no appends")

	want := &produced{}
	s := &sink{}
	os := &orderSink{t: t, next: s, want: want}
	drain, _ := startDelivery(t, j, newCounter(t, j, os))
	produce(t, brokers, topic, "a", 200, want)
	eventually30(t, func() bool { return s.distinct() == 200 }, "every record is delivered")
	produce(t, brokers, topic, "b", 100, want)
	eventually30(t, func() bool { return s.distinct() == 300 }, "later records too")
	drain()

	for id, n := range s.seen {
		assert.Equal(t, 1, n, "%s delivered once", id)
	}
	assert.Len(t, want.per, 3, "the twelve jobs use all three partitions: %v", want.per)
	assert.Equal(t, want.per, changelogCounts(t, brokers, topic),
		"each partition's state (the counter) is in its changelog partition, every record counted once")
	for p := range want.per {
		assert.Equal(t, 1, os.claimed[p], "partition %d: one claimed first delivery", p)
	}
}

func eventually30(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	require.Eventually(t, cond, 60*time.Second, 20*time.Millisecond, msg)
}

// TestKafkaFailoverRestoresState: collector A delivers and checkpoints, then
// hangs in a delivery (its store stopped answering) and dies; collector B
// takes the partitions over, restores their state from the changelog and
// delivers everything after A's last checkpoint again. Every record is
// counted once in the state, though the store saw some twice (it keeps
// them once, by event id).
func TestKafkaFailoverRestoresState(t *testing.T) {
	brokers := kafkatest.Require(t)
	topic := kafkatest.Unique(t, "j")
	group := kafkatest.Unique(t, "g")
	kafkatest.DeleteTopicsAtCleanup(t, topic, topic+"-state")
	ctx := context.Background()
	want := &produced{}
	s := &sink{}

	a := kafkaJournal(t, kafkaTestConfig(t, brokers, topic, group, 4))
	osA := &orderSink{t: t, next: s, want: want}
	_, crashA := startDelivery(t, a, newCounter(t, a, osA))
	produce(t, brokers, topic, "a", 200, want)
	eventually30(t, func() bool { return s.distinct() == 200 }, "A delivers the first records")
	time.Sleep(300 * time.Millisecond) // a checkpoint after them
	osA.mu.Lock()
	osA.block = make(chan struct{})
	osA.mu.Unlock()
	produce(t, brokers, topic, "b", 200, want)
	time.Sleep(500 * time.Millisecond)
	crashA()
	require.NoError(t, a.Shutdown(ctx))

	b := kafkaJournal(t, kafkaTestConfig(t, brokers, topic, group, 4))
	osB := &orderSink{t: t, next: s, want: want}
	drainB, _ := startDelivery(t, b, newCounter(t, b, osB))
	eventually30(t, func() bool { return s.distinct() == 400 }, "B delivers the rest")
	drainB()
	assert.Equal(t, want.per, changelogCounts(t, brokers, topic), "every record counted once across the failover")
	assert.Len(t, osB.claimed, 4, "B claimed every partition")
}

// TestKafkaRebalanceMovesState: A owns every partition; B joins while
// records keep coming (partitions move to B), then A leaves (B owns all).
// The state of every partition follows it: each record counted once.
func TestKafkaRebalanceMovesState(t *testing.T) {
	brokers := kafkatest.Require(t)
	topic := kafkatest.Unique(t, "j")
	group := kafkatest.Unique(t, "g")
	kafkatest.DeleteTopicsAtCleanup(t, topic, topic+"-state")
	ctx := context.Background()
	want := &produced{}
	s := &sink{}

	a := kafkaJournal(t, kafkaTestConfig(t, brokers, topic, group, 4))
	osA := &orderSink{t: t, next: s, want: want}
	drainA, _ := startDelivery(t, a, newCounter(t, a, osA))
	produce(t, brokers, topic, "a", 100, want)
	eventually30(t, func() bool { return s.distinct() == 100 }, "A delivers")

	b := kafkaJournal(t, kafkaTestConfig(t, brokers, topic, group, 4))
	osB := &orderSink{t: t, next: s, want: want}
	drainB, _ := startDelivery(t, b, newCounter(t, b, osB))
	for i := range 10 {
		produce(t, brokers, topic, "b"+strconv.Itoa(i), 20, want)
		time.Sleep(200 * time.Millisecond)
	}
	eventually30(t, func() bool { return s.distinct() == 300 }, "A and B deliver")
	osB.mu.Lock()
	moved := len(osB.claimed)
	osB.mu.Unlock()
	assert.Positive(t, moved, "partitions moved to B")
	drainA()
	require.NoError(t, a.Shutdown(ctx))
	produce(t, brokers, topic, "c", 100, want)
	eventually30(t, func() bool { return s.distinct() == 400 }, "B delivers alone")
	drainB()
	assert.Equal(t, want.per, changelogCounts(t, brokers, topic), "every record counted once across the moves")
}
