package kafkaexporter

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/exporter/kafkaexporter/internal/metadata"
	"github.com/batchaudit/batchaudit/internal/kafkatest"
)

// event describes one log record of a test request.
type event struct {
	id, namespace, job, batch string
	onResource                bool // job name and namespace on the resource instead of the record
}

// request builds one request with a resource per event (so copies of
// resources are exercised) and a large body when pad > 0.
func request(pad int, evs ...event) plog.Logs {
	ld := plog.NewLogs()
	for _, e := range evs {
		rl := ld.ResourceLogs().AppendEmpty()
		rl.Resource().Attributes().PutStr("service.name", "test-"+e.id)
		sl := rl.ScopeLogs().AppendEmpty()
		sl.Scope().SetName("scope-" + e.id)
		lr := sl.LogRecords().AppendEmpty()
		lr.SetEventName(auditevent.RecordWrite)
		lr.Attributes().PutStr(auditevent.AttrEventID, e.id)
		attrs := lr.Attributes()
		if e.onResource {
			attrs = rl.Resource().Attributes()
		}
		if e.job != "" {
			attrs.PutStr(auditevent.AttrJobName, e.job)
		}
		if e.namespace != "" {
			attrs.PutStr(auditevent.AttrJobNamespace, e.namespace)
		}
		if e.batch != "" {
			lr.Attributes().PutStr(auditevent.AttrBatchID, e.batch)
		}
		if pad > 0 {
			lr.Body().SetStr(string(make([]byte, pad)))
		}
	}
	return ld
}

// ids decodes a record's events: their ids, in order, with the resource
// and scope each came under.
func ids(t *testing.T, value []byte) []string {
	t.Helper()
	ld, err := (&plog.ProtoUnmarshaler{}).UnmarshalLogs(value)
	require.NoError(t, err)
	var out []string
	for _, rl := range ld.ResourceLogs().All() {
		for _, sl := range rl.ScopeLogs().All() {
			for _, lr := range sl.LogRecords().All() {
				id, _ := lr.Attributes().Get(auditevent.AttrEventID)
				svc, _ := rl.Resource().Attributes().Get("service.name")
				require.Equal(t, "test-"+id.Str(), svc.Str(), "the event keeps its resource")
				require.Equal(t, "scope-"+id.Str(), sl.Scope().Name(), "the event keeps its scope")
				out = append(out, id.Str())
			}
		}
	}
	return out
}

func TestKeyIsTheJobElseTheBatch(t *testing.T) {
	ld := request(0,
		event{id: "a", namespace: "ns", job: "orders", batch: "b1"},
		event{id: "b", namespace: "ns", job: "orders", batch: "b2", onResource: true},
		event{id: "c", job: "orders", batch: "b1"},
		event{id: "d", batch: "b3"},
		event{id: "e"},
	)
	var keys []string
	for _, rl := range ld.ResourceLogs().All() {
		keys = append(keys, Key(rl.ScopeLogs().At(0).LogRecords().At(0), rl.Resource()))
	}
	assert.Equal(t, []string{"ns/orders", "ns/orders", "/orders", "b3", ""}, keys,
		"namespace/name from the record or its resource; the batch id without a job; nothing without either")
}

func TestRecordsPerKeyInOrder(t *testing.T) {
	ld := request(0,
		event{id: "1", namespace: "ns", job: "a"},
		event{id: "2", namespace: "ns", job: "b"},
		event{id: "3", namespace: "ns", job: "a", onResource: true},
		event{id: "4", batch: "x"},
		event{id: "5", namespace: "ns", job: "b"},
	)
	recs, err := toRecords(ld, 1<<20)
	require.NoError(t, err)
	require.Len(t, recs, 3)
	got := map[string][]string{}
	var order []string
	for _, r := range recs {
		order = append(order, string(r.Key))
		got[string(r.Key)] = ids(t, r.Value)
	}
	assert.Equal(t, []string{"ns/a", "ns/b", "x"}, order, "keys in order of first appearance")
	assert.Equal(t, map[string][]string{"ns/a": {"1", "3"}, "ns/b": {"2", "5"}, "x": {"4"}}, got)
}

func TestOneJobIsOneRecordWithoutCopies(t *testing.T) {
	ld := request(0, event{id: "1", job: "a"}, event{id: "2", job: "a"})
	recs, err := toRecords(ld, 1<<20)
	require.NoError(t, err)
	require.Len(t, recs, 1)
	want, err := marshaler.MarshalLogs(ld)
	require.NoError(t, err)
	assert.Equal(t, want, recs[0].Value, "the request is encoded as it came")
}

func TestLargeRequestsAreSplitInOrder(t *testing.T) {
	var evs []event
	for i := range 20 {
		evs = append(evs, event{id: fmt.Sprint(i), job: "big"})
	}
	recs, err := toRecords(request(3000, evs...), 10_000)
	require.NoError(t, err)
	require.Greater(t, len(recs), 6, "20 events of 3 KB do not fit in records of 10 KB")
	var all []string
	for _, r := range recs {
		assert.Equal(t, "/big", string(r.Key))
		assert.LessOrEqual(t, len(r.Value), 10_000)
		all = append(all, ids(t, r.Value)...)
	}
	var want []string
	for i := range 20 {
		want = append(want, fmt.Sprint(i))
	}
	assert.Equal(t, want, all, "every event once, in order")

	_, err = toRecords(request(20_000, event{id: "huge", job: "big"}), 10_000)
	assert.ErrorContains(t, err, "more than max_record_bytes")
}

func newTestExporter(t *testing.T, brokers []string, topic string, partitions int32) *kafkaExporter {
	t.Helper()
	cfg := createDefaultConfig().(*Config)
	cfg.Brokers, cfg.Topic, cfg.Partitions = brokers, topic, partitions
	cfg.TimeoutConfig.Timeout = 5 * time.Second
	require.NoError(t, cfg.Validate())
	e, err := newExporter(cfg, exportertest.NewNopSettings(metadata.Type))
	require.NoError(t, err)
	require.NoError(t, e.start(context.Background(), componenttest.NewNopHost()))
	t.Cleanup(func() { require.NoError(t, e.shutdown(context.Background())) })
	return e
}

// TestProduceToTheRealBroker produces requests of several jobs through the
// exporter into a new topic on the real broker (make kafka-up) and reads
// them back: the topic was created with the configured partitions, every
// job's events are on one partition, in the order they were sent, and each
// record decodes to the events sent.
func TestProduceToTheRealBroker(t *testing.T) {
	brokers := kafkatest.Require(t)
	topic := kafkatest.Unique(t, "gw")
	kafkatest.DeleteTopicsAtCleanup(t, topic)
	e := newTestExporter(t, brokers, topic, 6)
	ctx := context.Background()
	// The first request may meet the topic not yet verified: the
	// receiver answers 503 then and the client retries, as here.
	var sent []event
	for i := range 40 {
		evs := []event{
			{id: fmt.Sprintf("a%02d", i), namespace: "ns", job: "a"},
			{id: fmt.Sprintf("b%02d", i), namespace: "ns", job: "b"},
			{id: fmt.Sprintf("c%02d", i), namespace: "other", job: "c", onResource: true},
			{id: fmt.Sprintf("x%02d", i), batch: fmt.Sprintf("batch-%d", i%3)},
		}
		require.Eventually(t, func() bool { return e.push(ctx, request(0, evs...)) == nil }, 30*time.Second, 50*time.Millisecond)
		sent = append(sent, evs...)
	}

	details, err := kafkatest.Admin(t).ListTopics(ctx, topic)
	require.NoError(t, err)
	require.Len(t, details[topic].Partitions, 6, "the exporter created the topic with the configured partitions")

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	partitionOf := map[string]int32{}
	perKey := map[string][]string{}
	deadline := time.Now().Add(30 * time.Second)
	for n := 0; n < len(sent) && time.Now().Before(deadline); {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			key := string(r.Key)
			if p, ok := partitionOf[key]; ok {
				assert.Equal(t, p, r.Partition, "key %s is on one partition", key)
			}
			partitionOf[key] = r.Partition
			got := ids(t, r.Value)
			perKey[key] = append(perKey[key], got...)
			n += len(got)
		})
	}
	want := map[string][]string{}
	for _, ev := range sent {
		key := ev.namespace + "/" + ev.job
		if ev.job == "" {
			key = ev.batch
		}
		want[key] = append(want[key], ev.id)
	}
	assert.Equal(t, want, perKey, "every event once, under its key, in the order sent")
	used := map[int32]bool{}
	for _, p := range partitionOf {
		used[p] = true
	}
	assert.Greater(t, len(used), 1, "several keys spread over partitions: %v", partitionOf)
}

// TestUnreachableBrokersAreRetryable: with no broker the push fails fast
// with a retryable error (the receiver answers 503), never a permanent one.
func TestUnreachableBrokersAreRetryable(t *testing.T) {
	e := newTestExporter(t, []string{"127.0.0.1:1"}, "nowhere", 1)
	err := e.push(context.Background(), request(0, event{id: "1", job: "a"}))
	require.Error(t, err)
	assert.False(t, consumererror.IsPermanent(err))
	assert.ErrorContains(t, err, "not verified yet")
}
