package testbed

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/batchaudit/batchaudit/internal/estest"
	"github.com/batchaudit/batchaudit/testbed/harness"
)

// The end-to-end cost of the collector (docs/performance.md): CPU of the
// collector process per event with the shipped configuration, events/s,
// memory, and for Elasticsearch the node's own CPU per event against a
// plain _bulk loader measured in the same run. make bench-e2e runs it:
//
//	go test -run '^$' -bench E2E -benchtime 1x -timeout 60m ./testbed/
//
// A loader posts JSON arrays of 500 events (record reads and writes of
// about 600 bytes, like the measurement) from 4 senders, one run per
// pass; the first pass inserts every key, the second updates them (CDC
// state warm). Stored per pass: the 100,000 events, one lineage record per
// record and the run's dataset edge, after the run settles.

const (
	perfRequests = 200 // × 500 events per pass
	perfPerReq   = 500
	perfSenders  = 4
)

// perfBodies builds the requests of one pass: one run (batch start, then
// for each record a read of the source and a write of the target, then a
// batch end), keys K-0000000.., with version v of the record data.
func perfBodies(run string, v int) [][]byte { return perfRun(run, v, perfRequests, 0) }

// perfRun builds the n requests of one run (n*perfPerReq/2 records, keys
// from K-<base>).
func perfRun(run string, v, n, base int) [][]byte {
	bodies := make([][]byte, n)
	records := n * perfPerReq / 2
	ts := time.Now().UTC().Format(time.RFC3339Nano)
	for r := range n {
		var b bytes.Buffer
		b.WriteByte('[')
		for i := range perfPerReq {
			k := base + (r*perfPerReq+i)/2
			if i > 0 {
				b.WriteByte(',')
			}
			typ, ds := "record_read", "source"
			if i%2 == 1 {
				typ, ds = "record_write", "target"
			}
			switch {
			case r == 0 && i == 0:
				fmt.Fprintf(&b, `{"event_id":"%s-start","batch_id":"%s","event_type":"batch_start","timestamp":"%s","job_name":"perf-load","actor":"svc-perf"},`, run, run, ts)
			case r == n-1 && i == perfPerReq-1:
				fmt.Fprintf(&b, `{"event_id":"%s-end","batch_id":"%s","event_type":"batch_end","timestamp":"%s","job_name":"perf-load","status":"success",`+
					`"counters":{"read":%d,"written":%d,"skipped":0,"errored":0}},`, run, run, ts, records, records)
			}
			dataset := "postgres://db:5432/sales.orders"
			if ds == "target" {
				dataset = "orders_clean"
			}
			fmt.Fprintf(&b, `{"event_id":"%s-%d","batch_id":"%s","event_type":"%s","timestamp":"%s",`+
				`"job_name":"perf-load","actor":"svc-perf","%s":"%s",`+
				`"record_id":"K-%07d","record_data":{"order_id":"K-%07d","customer":"Customer %d","country":"de",`+
				`"amount":%d.%02d,"currency":"EUR","status":"confirmed","version":%d}}`,
				run, r*perfPerReq+i, run, typ, ts, ds, dataset, k, k, k%997, 1+k%5000, k%100, v)
		}
		b.WriteByte(']')
		bodies[r] = b.Bytes()
	}
	return bodies
}

// perfEvents is how many events a pass posts, and how many the store then
// holds for it: the run's events and one lineage record per record (the
// dataset edge follows when the run settles).
func perfEvents() (posted, stored int64) {
	posted = perfRequests*perfPerReq + 2
	return posted, posted + perfRequests*perfPerReq/2
}

// perfPost sends the bodies from perfSenders goroutines; a 503 is retried
// after a short pause (the journal is full: honest backpressure).
func perfPost(t testing.TB, endpoint string, bodies [][]byte) {
	t.Helper()
	work := make(chan []byte)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed error
	client := &http.Client{Timeout: 2 * time.Minute}
	for range perfSenders {
		wg.Go(func() {
			for body := range work {
				for {
					resp, err := client.Post(endpoint+"/v1/audit/events", "application/json", bytes.NewReader(body))
					if err != nil {
						mu.Lock()
						failed = err
						mu.Unlock()
						break
					}
					msg, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusServiceUnavailable {
						time.Sleep(100 * time.Millisecond)
						continue
					}
					if resp.StatusCode != http.StatusOK {
						mu.Lock()
						failed = fmt.Errorf("HTTP %d: %s", resp.StatusCode, msg)
						mu.Unlock()
					}
					break
				}
			}
		})
	}
	for _, b := range bodies {
		work <- b
	}
	close(work)
	wg.Wait()
	if failed != nil {
		t.Fatal(failed)
	}
}

// perfPass posts one pass and waits until the store holds want entries in
// the stream; it returns the wall time and the collector's CPU seconds.
func perfPass(b *testing.B, c *harness.Collector, bodies [][]byte, stored func() (int64, error), want int64) (wall, cpu float64) {
	cpu0, _ := c.CPUSeconds()
	io0, _ := harness.ProcWrittenBytes(c.Pid())
	defer func() {
		if io1, err := harness.ProcWrittenBytes(c.Pid()); err == nil {
			posted, _ := perfEvents()
			b.Logf("collector wrote %.1f KB to disk per posted event", float64(io1-io0)/float64(posted)/1000)
		}
	}()
	start := time.Now()
	perfPost(b, c.HTTPEndpoint(), bodies)
	harness.Eventually(b, 15*time.Minute, func() error {
		n, err := stored()
		if err != nil {
			return err
		}
		if n < want {
			return fmt.Errorf("%d of %d stored", n, want)
		}
		return nil
	})
	wall = time.Since(start).Seconds()
	cpu1, _ := c.CPUSeconds()
	return wall, cpu1 - cpu0
}

func perfReport(b *testing.B, name string, events int64, wall, cpu float64, c *harness.Collector) {
	mem, _ := harness.ProcMemory(c.Pid())
	b.Logf("%-28s %7d events  %6.1f s  %8.0f events/s  collector %5.2f cores  %6.1f µs/event  RSS %4.0f MiB (anon %4.0f, peak %4.0f)",
		name, events, wall, float64(events)/wall, cpu/wall, cpu/float64(events)*1e6, mem.RSS, mem.Anon, mem.Peak)
}

// BenchmarkE2ESQLite: the shipped local configuration (journal, cdc,
// lineage, SQLite with checkpoints), JSON load and the example job.
func BenchmarkE2ESQLite(b *testing.B) {
	dir := b.TempDir()
	cfg, pprofAddr := withPprof(b, withCheckpoints(b, dir, sqliteConfig()))
	c := harness.StartCollector(b, dir, harness.NewPorts(b), cfg)
	s := openSQLite(b, dir)
	stored := func() (int64, error) { return s.LastSequence(context.Background(), "e2e") }
	n, perPass := perfEvents()
	var passWall float64
	for pass, name := range []string{"sqlite json insert", "sqlite json update"} {
		// The update pass is profiled for most of its (expected) length:
		// the share of the tamper evidence in the collector's CPU (and the
		// whole profile kept in $BATCHAUDIT_CPU_PROFILE if set).
		var prof func() *profile.Profile
		if pass == 1 {
			prof = cpuProfile(b, pprofAddr, time.Duration(max(2, int(0.8*passWall)))*time.Second)
		}
		wall, cpu := perfPass(b, c, perfBodies(fmt.Sprintf("perf-%d", pass), pass), stored, perPass*int64(pass+1))
		passWall = wall
		perfReport(b, name, n, wall, cpu, c)
		b.ReportMetric(cpu/float64(n)*1e6, strings.ReplaceAll(name, " ", "-")+"-µs/event")
		if prof != nil {
			p := prof()
			if out := os.Getenv("BATCHAUDIT_CPU_PROFILE"); out != "" {
				writeProfile(b, p, out)
			}
			share, total := shareOf(p, merkleWork)
			b.Logf("%s: Merkle appends and checkpoints %.1f%% of %.1f s of collector CPU profiled", name, 100*share, total.Seconds())
			b.ReportMetric(100*share, "merkle-%-of-cpu")
		}
	}
	// The example job: 5 events per order received, 6 stored.
	const orders = 20000
	in := filepath.Join(dir, "orders.csv")
	writeOrders(b, in, orders)
	before, _ := stored()
	cpu0, _ := c.CPUSeconds()
	start := time.Now()
	runOrdersJob(b, c, in, filepath.Join(dir, "out.csv"), "perf-orders")
	want := before + int64(expectedEvents(orders))
	harness.Eventually(b, 15*time.Minute, func() error {
		got, err := stored()
		if err != nil || got < want-int64(expectedEvents(orders))/10 {
			return fmt.Errorf("%d of %d stored (%v)", got, want, err)
		}
		// Lineage records follow settlement; the job's own events are in.
		return nil
	})
	wall := time.Since(start).Seconds()
	cpu1, _ := c.CPUSeconds()
	got, _ := stored()
	perfReport(b, "sqlite ordersjob", got-before, wall, cpu1-cpu0, c)
	b.Logf("sqlite ordersjob: %.0f µs collector CPU per order", (cpu1-cpu0)/orders*1e6)
	b.ReportMetric((cpu1-cpu0)/orders*1e6, "ordersjob-µs/order")
}

// withCheckpoints signs the stream's checkpoints, as the shipped configs do.
func withCheckpoints(t testing.TB, dir, cfg string) string {
	key := filepath.Join(dir, "signing.key")
	harness.RunCommand(t, time.Minute, nil, harness.Binary(t, "BATCHAUDIT_CLI", "batchaudit"), "keygen", "--name", "perf", "--out", key)
	return strings.Replace(cfg, "    stream: e2e\n", "    stream: e2e\n    checkpoints:\n      key_files: ["+key+"]\n      file: "+
		filepath.Join(dir, "checkpoints.jsonl")+"\n", 1)
}

// esPid is the local node's process id (scripts/es.sh writes it).
func esPid(t testing.TB) int {
	pid, err := scriptPid(filepath.Join("es", "run", "es-9200.pid"))
	if err != nil {
		t.Skipf("the Elasticsearch node's pid is not known (%v): the node's CPU cannot be measured", err)
	}
	return pid
}

// scriptPid reads a pid file that scripts/es.sh or scripts/kafka.sh wrote
// under the cache root.
func scriptPid(rel string) (int, error) {
	root := os.Getenv("BATCHAUDIT_CACHE")
	if root == "" {
		root = filepath.Join(os.Getenv("HOME"), ".cache", "batchaudit")
	}
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// BenchmarkE2EElasticsearch: the shipped Elasticsearch configuration under
// the JSON load, the node's CPU per event, against a plain _bulk loader of
// the same documents into the same node; then a steady 10k events/s for a
// minute: memory over time and emit → searchable latency.
func BenchmarkE2EElasticsearch(b *testing.B) {
	es := estest.Require(b)
	node := esPid(b)
	prefix := estest.UniqueName(b, "perf")
	estest.TrackIndex(b, es, prefix+"-*")
	dir := b.TempDir()
	cfg := strings.Replace(pipeline, "{{EXPORTER}}", fmt.Sprintf(
		"    elasticsearch:\n      endpoints: [%s]\n      index_prefix: %s", estest.URL(), prefix), 1)
	c := harness.StartCollector(b, dir, harness.NewPorts(b), withCheckpoints(b, dir, cfg))
	// Progress is polled from the collector's own count of stored events,
	// not from the node: a refresh and a count every 200 ms would add node
	// work (small segments, their merges) that the plain loader below does
	// not have. The node is asked once the collector reports them all.
	var target int64
	stored := func() (int64, error) {
		n, err := c.Metric("otelcol_exporter_audit_events", `outcome="stored"`)
		if err != nil || int64(n) < target {
			return int64(n), err
		}
		return esCount(estest.URL(), prefix+"-events")
	}
	// The node is shared: what it spends with this benchmark idle is
	// everyone else's load, included in every CPU figure below.
	idle0, _ := harness.ProcCPUSeconds(node)
	time.Sleep(5 * time.Second)
	idle1, _ := harness.ProcCPUSeconds(node)
	n, perPass := perfEvents()
	var collectorRate, nodeCPU float64
	for pass, name := range []string{"es json insert", "es json update"} {
		n0, _ := harness.ProcCPUSeconds(node)
		s0 := esNodeWork(b, estest.URL(), prefix+"-*")
		w0 := storeWrites(c)
		target = perPass * int64(pass+1)
		wall, cpu := perfPass(b, c, perfBodies(fmt.Sprintf("perf-%d", pass), pass), stored, target)
		n1, _ := harness.ProcCPUSeconds(node)
		work := esNodeWork(b, estest.URL(), prefix+"-*").since(s0, perPass)
		writes := storeWrites(c).since(w0, wall)
		perfReport(b, name, n, wall, cpu, c)
		// Per stored event document, like the plain loader below (a pass
		// stores lineage records besides the posted events; the runs, tiles
		// and checkpoints the collector writes as well count as its cost).
		nodeCPU = (n1 - n0) / float64(perPass)
		collectorRate = float64(perPass) / wall
		b.Logf("%-28s node CPU %.1f µs/stored event, %.0f stored events/s; %s; %s", name, nodeCPU*1e6, collectorRate, writes, work)
	}
	// The plain loader: the same documents, bulk-created into a fresh index
	// with the same mapping, 4 requests of about 5 MiB in flight.
	docs := esDocuments(b, estest.URL(), prefix+"-events", int(n))
	plain := prefix + "-plain"
	esCopyTemplate(b, estest.URL(), prefix+"-events", plain)
	n0, _ := harness.ProcCPUSeconds(node)
	s0 := esNodeWork(b, estest.URL(), plain)
	start := time.Now()
	esPlainBulk(b, estest.URL(), plain, docs)
	wall := time.Since(start).Seconds()
	n1, _ := harness.ProcCPUSeconds(node)
	work := esNodeWork(b, estest.URL(), plain).since(s0, int64(len(docs)))
	plainRate, plainCPU := float64(len(docs))/wall, (n1-n0)/float64(len(docs))
	b.Logf("%-28s %7d docs  %6.1f s  %8.0f docs/s  node CPU %.1f µs/doc; %s", "plain _bulk loader", len(docs), wall, plainRate, plainCPU*1e6, work)
	b.Logf("collector reaches %.0f%% of the plain loader's rate; node CPU per event %.2f× the plain loader's (node CPU with nothing of this benchmark running: %.2f cores)",
		100*collectorRate/plainRate, nodeCPU/plainCPU, (idle1-idle0)/5)
	b.ReportMetric(100*collectorRate/plainRate, "%-of-bulk-ceiling")
	b.ReportMetric(nodeCPU/plainCPU, "node-cpu-ratio")

	if testing.Short() {
		b.Log("-short: the steady 10k events/s minute is skipped")
		return
	}
	steady(b, c, func(id string) bool {
		n, err := esCountQuery(estest.URL(), prefix+"-events", "event.id", id)
		return err == nil && n > 0
	})
}

// writes is the exporter's count of store writes and their total time.
type writes struct{ n, seconds float64 }

func storeWrites(c *harness.Collector) writes {
	n, _ := c.Metric("otelcol_exporter_audit_write_duration_count")
	sec, _ := c.Metric("otelcol_exporter_audit_write_duration_sum")
	return writes{n, sec}
}

func (w writes) since(w0 writes, wall float64) string {
	n, sec := w.n-w0.n, w.seconds-w0.seconds
	return fmt.Sprintf("%.0f store writes of %.2f s on average, %.0f%% of the time", n, sec/max(n, 1), 100*sec/wall)
}

// nodeWork is what the node did for a set of indices (their primaries'
// stats) and, node-wide, its write pool (shared with anything else the node
// serves meanwhile).
type nodeWork struct {
	gets, refreshes, indexed, searches, bulkShardOps, merges, writeTasks int64
}

func esNodeWork(t testing.TB, url, indices string) nodeWork {
	t.Helper()
	var st struct {
		All struct {
			Primaries struct {
				Get struct {
					Total int64 `json:"total"`
				} `json:"get"`
				Refresh struct {
					Total int64 `json:"total"`
				} `json:"refresh"`
				Indexing struct {
					IndexTotal int64 `json:"index_total"`
				} `json:"indexing"`
				Search struct {
					QueryTotal int64 `json:"query_total"`
				} `json:"search"`
				Bulk struct {
					TotalOperations int64 `json:"total_operations"`
				} `json:"bulk"`
				Merges struct {
					Total int64 `json:"total"`
				} `json:"merges"`
			} `json:"primaries"`
		} `json:"_all"`
	}
	var nodes struct {
		Nodes map[string]struct {
			ThreadPool map[string]struct {
				Completed int64 `json:"completed"`
			} `json:"thread_pool"`
		} `json:"nodes"`
	}
	for _, g := range []struct {
		path string
		v    any
	}{{"/" + indices + "/_stats/get,refresh,indexing,search,bulk,merge", &st}, {"/_nodes/_local/stats/thread_pool", &nodes}} {
		resp, err := http.Get(url + g.path)
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(g.v)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	p := st.All.Primaries
	w := nodeWork{gets: p.Get.Total, refreshes: p.Refresh.Total, indexed: p.Indexing.IndexTotal, searches: p.Search.QueryTotal,
		bulkShardOps: p.Bulk.TotalOperations, merges: p.Merges.Total}
	for _, n := range nodes.Nodes {
		w.writeTasks += n.ThreadPool["write"].Completed
	}
	return w
}

// since is the work done since w0, per 100,000 stored events.
func (w nodeWork) since(w0 nodeWork, events int64) string {
	per := func(a, b int64) float64 { return float64(a-b) * 100_000 / float64(events) }
	return fmt.Sprintf("per 100k: %.0f gets, %.0f refreshes, %.0f docs indexed, %.0f searches, %.0f shard bulks, %.0f merges, %.0f write-pool tasks (node-wide)",
		per(w.gets, w0.gets), per(w.refreshes, w0.refreshes), per(w.indexed, w0.indexed), per(w.searches, w0.searches),
		per(w.bulkShardOps, w0.bulkShardOps), per(w.merges, w0.merges), per(w.writeTasks, w0.writeTasks))
}

// steady sends 10k events/s for a minute (20 requests of 500 per second,
// each second one complete run of 5,000 records, as a job per second
// would): memory every 5 s, and emit → visible latency of one event per
// second (visible reports whether the store has the event with that id).
func steady(b *testing.B, c *harness.Collector, visible func(eventID string) bool) {
	const seconds, rate = 60, 10000
	perSecond := rate / perfPerReq
	var lat []float64
	var mem []harness.Memory
	var mu sync.Mutex
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	cpu0, _ := c.CPUSeconds()
	start := time.Now()
	for s := range seconds {
		<-tick.C
		bodies := perfRun(fmt.Sprintf("steady-%d", s), 0, perSecond, s*rate/2) // fresh keys every second
		marker := fmt.Sprintf("steady-%d-0", s)
		sent := time.Now()
		wg.Go(func() {
			perfPost(b, c.HTTPEndpoint(), bodies)
			for time.Since(sent) < 30*time.Second {
				if visible(marker) {
					mu.Lock()
					lat = append(lat, time.Since(sent).Seconds())
					mu.Unlock()
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
		if s%5 == 4 {
			m, _ := harness.ProcMemory(c.Pid())
			mem = append(mem, m)
		}
	}
	wg.Wait()
	wall := time.Since(start).Seconds()
	cpu1, _ := c.CPUSeconds()
	// CPU per event over all the work: until the last run's batch end is
	// stored (a collector that fell behind is still working after the
	// minute; the journal delivers in order).
	last := fmt.Sprintf("steady-%d-end", seconds-1)
	harness.Eventually(b, 10*time.Minute, func() error {
		if !visible(last) {
			return fmt.Errorf("%s not stored yet", last)
		}
		return nil
	})
	behind := time.Since(start).Seconds() - wall
	cpuAll, _ := c.CPUSeconds()
	sort.Float64s(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	var rss []string
	for _, m := range mem {
		rss = append(rss, fmt.Sprintf("%.0f/%.0f", m.RSS, m.Anon))
	}
	perEvent := (cpuAll - cpu0) / float64(rate*seconds) * 1e6
	b.Logf("steady %d events/s for %d s: collector %.2f cores during the minute, all stored %.1f s after it, %.1f µs/event; RSS/anon MiB every 5 s: %s",
		rate, seconds, (cpu1-cpu0)/wall, behind, perEvent, strings.Join(rss, " "))
	b.Logf("emit → visible: p50 %.2f s, p99 %.2f s, max %.2f s (%d samples)", pct(0.5), pct(0.99), pct(1), len(lat))
	b.ReportMetric(pct(0.99), "visible-p99-s")
	b.ReportMetric(perEvent, "steady-µs/event")
	if len(mem) > 0 {
		b.ReportMetric(mem[len(mem)-1].RSS, "steady-RSS-MiB")
		peak := 0.0
		for _, m := range mem {
			peak = max(peak, m.RSS)
		}
		b.ReportMetric(peak, "steady-max-RSS-MiB")
	}
}

// BenchmarkE2ESteadySQLite: a fresh collector with the memory settings of
// the shipped SQLite configuration (configs/local.yaml: the lineage
// processor's memory_limit_mib 64, the journal's go_memory_limit_mib 128)
// takes a steady 10k events/s for a minute: RSS over time (issue 15's
// memory target) and CPU per event. GOMEMLIMIT in the environment replaces
// the journal's limit (the collector inherits it).
// BATCHAUDIT_HEAP_PROFILE=path keeps a heap profile of the collector at
// the end of the minute.
func BenchmarkE2ESteadySQLite(b *testing.B) {
	dir := b.TempDir()
	cfg, pprofAddr := withPprof(b, withCheckpoints(b, dir, sqliteConfig()))
	cfg = strings.Replace(cfg, "    settle_time: 1s\n", "    settle_time: 1s\n    memory_limit_mib: 64\n", 1)
	cfg = strings.Replace(cfg, "    tick_interval: 200ms\n", "    tick_interval: 200ms\n    go_memory_limit_mib: 128\n    max_delivery_events: 2048\n", 1)
	if strings.Count(cfg, " memory_limit_mib: 64") != 1 || strings.Count(cfg, "go_memory_limit_mib: 128") != 1 {
		b.Fatal("the testbed pipeline changed: the memory settings were not added")
	}
	c := harness.StartCollector(b, dir, harness.NewPorts(b), cfg)
	s := openSQLite(b, dir)
	steady(b, c, func(id string) bool {
		e, err := s.EntryOf(context.Background(), id)
		return err == nil && e != nil
	})
	// The guard of the journal's memory limit says when it had to raise it.
	adjusted := 0
	for _, line := range strings.Split(c.Logs(), "\n") {
		if strings.Contains(line, "memory limit adjusted") {
			adjusted++
			b.Logf("collector: %s", line)
		}
	}
	b.ReportMetric(float64(adjusted), "limit-adjustments")
	// The Go runtime's own view at the end: heap in use against the next
	// GC's goal, what the process took from the OS, how many GCs ran.
	if resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/heap?debug=1", pprofAddr)); err == nil {
		text, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var stats []string
		for _, line := range strings.Split(string(text), "\n") {
			for _, k := range []string{"# HeapAlloc = ", "# HeapInuse = ", "# HeapReleased = ", "# NextGC = ", "# Sys = ", "# NumGC = "} {
				if v, ok := strings.CutPrefix(line, k); ok {
					if n, err := strconv.ParseFloat(v, 64); err == nil && k != "# NumGC = " {
						v = fmt.Sprintf("%.0fMiB", n/(1<<20))
					}
					stats = append(stats, strings.TrimSuffix(k[2:], " = ")+" "+v)
				}
			}
		}
		b.Logf("runtime at the end: %s (GOMEMLIMIT=%q GOGC=%q)", strings.Join(stats, ", "), os.Getenv("GOMEMLIMIT"), os.Getenv("GOGC"))
	}
	if out := os.Getenv("BATCHAUDIT_HEAP_PROFILE"); out != "" {
		resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/heap", pprofAddr))
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		prof, _ := io.ReadAll(resp.Body)
		if err := os.WriteFile(out, prof, 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

func esCount(url, index string) (int64, error) {
	resp, err := http.Post(url+"/"+index+"/_refresh", "application/json", nil)
	if err == nil {
		resp.Body.Close()
	}
	return esCountQuery(url, index, "", "")
}

func esCountQuery(url, index, field, value string) (int64, error) {
	q := `{"query":{"match_all":{}}}`
	if field != "" {
		q = fmt.Sprintf(`{"query":{"term":{%q:%q}}}`, field, value)
	}
	resp, err := http.Post(url+"/"+index+"/_count", "application/json", strings.NewReader(q))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Count int64 `json:"count"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, err
	}
	return r.Count, nil
}

// esDocuments reads n stored documents (their _source) of index.
func esDocuments(t testing.TB, url, index string, n int) [][]byte {
	t.Helper()
	var out [][]byte
	var after []any
	for len(out) < n {
		req := map[string]any{"size": 10000, "sort": []any{map[string]any{"event.sequence": "asc"}}}
		if after != nil {
			req["search_after"] = after
		}
		body, _ := json.Marshal(req)
		resp, err := http.Post(url+"/"+index+"/_search", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			Hits struct {
				Hits []struct {
					Source json.RawMessage `json:"_source"`
					Sort   []any           `json:"sort"`
				} `json:"hits"`
			} `json:"hits"`
		}
		err = json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Hits.Hits) == 0 {
			break
		}
		for _, h := range r.Hits.Hits {
			out = append(out, h.Source)
		}
		after = r.Hits.Hits[len(r.Hits.Hits)-1].Sort
	}
	return out[:min(n, len(out))]
}

// esCopyTemplate creates index to with the mapping of from.
func esCopyTemplate(t testing.TB, url, from, to string) {
	t.Helper()
	resp, err := http.Get(url + "/" + from + "/_mapping")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]struct {
		Mappings json.RawMessage `json:"mappings"`
	}
	err = json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`{"settings":{"index":{"number_of_shards":1,"codec":"best_compression"}},"mappings":%s}`, m[from].Mappings)
	req, _ := http.NewRequest(http.MethodPut, url+"/"+to, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

// esPlainBulk creates docs in index with bulk requests of about 5 MiB,
// 4 in flight: the node's ceiling for documents of this shape.
func esPlainBulk(t testing.TB, url, index string, docs [][]byte) {
	t.Helper()
	var bodies [][]byte
	var cur bytes.Buffer
	for i, d := range docs {
		fmt.Fprintf(&cur, `{"create":{"_index":%q,"_id":"p-%d"}}`+"\n", index, i)
		cur.Write(d)
		cur.WriteByte('\n')
		if cur.Len() > 5<<20 {
			bodies = append(bodies, bytes.Clone(cur.Bytes()))
			cur.Reset()
		}
	}
	if cur.Len() > 0 {
		bodies = append(bodies, cur.Bytes())
	}
	work := make(chan []byte)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for body := range work {
				resp, err := http.Post(url+"/_bulk?filter_path=errors", "application/x-ndjson", bytes.NewReader(body))
				if err != nil {
					t.Error(err)
					continue
				}
				msg, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if !bytes.Contains(msg, []byte(`"errors":false`)) {
					t.Errorf("plain bulk: %s", msg)
				}
			}
		})
	}
	for _, b := range bodies {
		work <- b
	}
	close(work)
	wg.Wait()
}
