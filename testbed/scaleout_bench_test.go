package testbed

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batchaudit/batchaudit/internal/kafkatest"
	"github.com/batchaudit/batchaudit/store/sqlitestore"
	"github.com/batchaudit/batchaudit/testbed/harness"
)

// BenchmarkE2EKafka: what the Kafka hop costs (docs/scale-out.md). The
// same JSON load as BenchmarkE2ESQLite (an insert pass, then an update
// pass) goes (a) into one collector with its local journal and (b) into a
// gateway that produces to the real broker, read by one processing
// collector; both store into SQLite with signed checkpoints. Reported: the
// CPU of each process per posted event, and the collectors' total against
// the single collector; the broker's own CPU (scripts/kafka.sh's broker,
// beside the collectors like Elasticsearch) is logged apart. make
// bench-e2e runs it.
func BenchmarkE2EKafka(b *testing.B) {
	brokers := kafkatest.Require(b)
	n, perPass := perfEvents()
	var single [2]float64

	// (a) One collector.
	sdir := filepath.Join(b.TempDir(), "single")
	c := harness.StartCollector(b, mkdir(b, sdir), harness.NewPorts(b), withCheckpoints(b, sdir, sqliteConfig()))
	s := openSQLite(b, sdir)
	stored := func() (int64, error) { return s.LastSequence(context.Background(), "e2e") }
	for pass, name := range []string{"single insert", "single update"} {
		wall, cpu := perfPass(b, c, perfBodies(fmt.Sprintf("perf-%d", pass), pass), stored, perPass*int64(pass+1))
		perfReport(b, name, n, wall, cpu, c)
		single[pass] = cpu
	}
	c.Stop()

	// (b) Gateway -> Kafka -> processing collector.
	dir := b.TempDir()
	topic := kafkatest.Unique(b, "bench")
	kafkatest.DeleteTopicsAtCleanup(b, topic, topic+"-state")
	group := kafkatest.Unique(b, "bench")
	brokerList := strings.Join(brokers, ", ")
	gw := harness.StartCollector(b, mkdir(b, filepath.Join(dir, "gateway")), harness.NewPorts(b),
		fill(gatewayConfig, "{{BROKERS}}", brokerList, "{{TOPIC}}", topic))
	pdir := mkdir(b, filepath.Join(dir, "processor"))
	key, _ := signingKey(b, dir, "bench")
	cfg := fill(processorConfig,
		"{{BROKERS}}", brokerList, "{{TOPIC}}", topic, "{{GROUP}}", group, "{{TXN}}", group+"-1",
		"{{CHECKPOINTS}}", checkpointsSection(filepath.Join(pdir, "checkpoints.jsonl"), "10s", 10000, key),
		// Production timings (configs/processor.yaml), not the failover test's.
		"tick_interval: 300ms\n    checkpoint_interval: 500ms\n", "tick_interval: 1s\n",
		"    elasticsearch:\n      endpoints: [{{ES}}]\n      index_prefix: {{PREFIX}}\n      retry:\n        max_interval: 1s\n",
		"    sqlite:\n      path: {{DIR}}/audit.db\n")
	require.Contains(b, cfg, "sqlite:", "the processing config's exporter was replaced")
	p := harness.StartCollector(b, pdir, harness.NewPorts(b), cfg)
	ps := openSQLite(b, pdir)
	storedAll := func() (int64, error) { return sumStreams(ps) }
	broker, brokerErr := scriptPid(filepath.Join("kafka", "run", "kafka-9092.pid"))
	for pass, name := range []string{"kafka insert", "kafka update"} {
		k0, _ := harness.ProcCPUSeconds(broker)
		g0, _ := gw.CPUSeconds()
		p0, _ := p.CPUSeconds()
		// perfPass posts to the gateway; the processor's CPU is read
		// around it.
		wall, gcpu := perfPass(b, gw, perfBodies(fmt.Sprintf("perf-%d", pass), pass), storedAll, perPass*int64(pass+1))
		g1, _ := gw.CPUSeconds()
		p1, _ := p.CPUSeconds()
		pcpu := p1 - p0
		if k1, err := harness.ProcCPUSeconds(broker); brokerErr == nil && err == nil {
			b.Logf("%s: the broker used %.1f µs CPU per event", name, (k1-k0)/float64(n)*1e6)
		}
		perfReport(b, name+" gateway", n, wall, g1-g0, gw)
		perfReport(b, name+" processing", n, wall, pcpu, p)
		total := gcpu + pcpu
		b.Logf("%s: gateway %.1f + processing %.1f = %.1f µs/event against %.1f for one collector: %+.0f%%",
			name, gcpu/float64(n)*1e6, pcpu/float64(n)*1e6, total/float64(n)*1e6, single[pass]/float64(n)*1e6, 100*(total/single[pass]-1))
		tag := strings.Fields(name)[1]
		b.ReportMetric(gcpu/float64(n)*1e6, "gateway-"+tag+"-µs/event")
		b.ReportMetric(pcpu/float64(n)*1e6, "processing-"+tag+"-µs/event")
		b.ReportMetric(100*(total/single[pass]-1), "kafka-hop-"+tag+"-%")
	}
}

// sumStreams is the number of entries in all streams of s.
func sumStreams(s *sqlitestore.Store) (int64, error) {
	ctx := context.Background()
	streams, err := s.Streams(ctx)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, st := range streams {
		m, err := s.LastSequence(ctx, st)
		if err != nil {
			return 0, err
		}
		n += m
	}
	return n, nil
}
