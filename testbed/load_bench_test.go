package testbed

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/batchaudit/batchaudit/internal/estest"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/esstore"
	"github.com/batchaudit/batchaudit/testbed/harness"
)

// loadRows per benchmark iteration; each row makes 6 stored events.
const loadRows = 20000

// benchLoad pushes the example job over loadRows orders through the built
// collector and reports stored events per second end to end (job start to
// the last event readable in the store) and the collector's CPU share.
// Run: make build && go test -run '^$' -bench EndToEnd -benchtime 1x ./testbed/
func benchLoad(b *testing.B, cfg string, open func(dir string) store.Reader) {
	dir := b.TempDir()
	in := filepath.Join(dir, "load.csv")
	writeOrders(b, in, loadRows)
	c := harness.StartCollector(b, dir, harness.NewPorts(b), cfg)
	want := expectedEvents(loadRows)
	var events, wall, cpu float64
	for i := range b.N {
		batch := fmt.Sprintf("load-%d", i)
		cpu0, _ := c.CPUSeconds()
		start := time.Now()
		job := harness.Binary(b, "BATCHAUDIT_ORDERSJOB", "ordersjob")
		harness.RunCommand(b, 10*time.Minute, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + c.HTTPEndpoint()},
			job, "-in", in, "-out", filepath.Join(dir, batch+".csv"), "-batch-id", batch)
		r := open(dir)
		harness.Eventually(b, 10*time.Minute, func() error {
			run, err := r.Runs(context.Background(), store.RunQuery{})
			if err != nil {
				return err
			}
			for _, x := range run {
				if x.BatchID == batch && x.Events >= int64(want) {
					return nil
				}
			}
			return fmt.Errorf("run %s not complete yet", batch)
		})
		wall += time.Since(start).Seconds()
		cpu1, _ := c.CPUSeconds()
		cpu += cpu1 - cpu0
		events += float64(want)
	}
	b.ReportMetric(events/wall, "events/s")
	b.ReportMetric(cpu/wall, "collector-cores")
	b.ReportMetric(cpu/events*1e6, "collector-µs/event")
}

func BenchmarkEndToEndSQLite(b *testing.B) {
	var s store.Reader
	benchLoad(b, sqliteConfig(), func(dir string) store.Reader {
		if s == nil {
			s = openSQLite(b, dir)
		}
		return s
	})
}

func BenchmarkEndToEndElasticsearch(b *testing.B) {
	estest.Require(b)
	prefix := estest.UniqueName(b, "load")
	estest.TrackIndex(b, estest.Require(b), prefix+"-*")
	cfg := strings.Replace(pipeline, "{{EXPORTER}}", fmt.Sprintf(
		"    elasticsearch:\n      endpoints: [%s]\n      index_prefix: %s", estest.URL(), prefix), 1)
	esCfg := esstore.NewDefaultConfig()
	esCfg.Endpoints = []string{estest.URL()}
	esCfg.IndexPrefix = prefix
	esCfg.InstallTemplates = false
	var reader *esstore.Store
	benchLoad(b, cfg, func(string) store.Reader {
		if reader == nil {
			var err error
			if reader, err = esstore.New(context.Background(), esCfg, zap.NewNop()); err != nil {
				b.Fatal(err)
			}
		}
		return reader
	})
}
