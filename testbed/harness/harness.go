// Package harness runs the real otelcol-batchaudit binary and the example job
// for end-to-end, load and fault tests. Binaries come from `make build`
// (BATCHAUDIT_COLLECTOR, BATCHAUDIT_ORDERSJOB, BATCHAUDIT_CLI); a missing
// binary fails the test with the command to run, it never skips.
package harness

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binary returns the path of a built binary named by env, failing the test
// with a hint when it is missing.
func Binary(t testing.TB, env, name string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		root, err := RepoRoot()
		if err != nil {
			t.Fatal(err)
		}
		p = filepath.Join(root, "_build", name)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s not found at %s (%s): run `make build` first", name, p, env)
	}
	return p
}

// RepoRoot finds the repository root (the directory holding go.mod).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "builder-config.yaml")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("repository root not found")
		}
		dir = parent
	}
}

// FreePort returns a free loopback TCP port, each at most once per test
// process. It picks below Linux's ephemeral range (32768–60999): a port the
// kernel hands out for ":0" is also what it gives the next outgoing
// connection, which then takes it before the collector binds it ("address
// already in use").
func FreePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		if portsGiven[port] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l.Close()
		portsGiven[port] = true
		return port
	}
	t.Fatal("no free port in 20000–31999")
	return 0
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// Ports are the listening ports of one collector instance.
type Ports struct {
	HTTP, GRPC, Health, Metrics int
}

// NewPorts picks free ports for a collector.
func NewPorts(t testing.TB) Ports {
	return Ports{HTTP: FreePort(t), GRPC: FreePort(t), Health: FreePort(t), Metrics: FreePort(t)}
}

// Collector is a running otelcol-batchaudit process.
type Collector struct {
	t       testing.TB
	bin     string
	config  string
	Dir     string // working directory: data and state live here
	Ports   Ports
	cmd     *exec.Cmd
	logs    *syncBuffer
	exited  chan struct{}
	exitErr error
}

// StartCollector writes config (with {{HTTP}}, {{GRPC}}, {{HEALTH}},
// {{METRICS}} and {{DIR}} replaced) into dir and starts the collector there.
// It waits for the health check, which the config must enable at {{HEALTH}}.
func StartCollector(t testing.TB, dir string, ports Ports, config string) *Collector {
	t.Helper()
	bin := Binary(t, "BATCHAUDIT_COLLECTOR", "otelcol-batchaudit")
	r := strings.NewReplacer("{{HTTP}}", fmt.Sprint(ports.HTTP), "{{GRPC}}", fmt.Sprint(ports.GRPC),
		"{{HEALTH}}", fmt.Sprint(ports.Health), "{{METRICS}}", fmt.Sprint(ports.Metrics), "{{DIR}}", dir)
	cfgPath := filepath.Join(dir, "collector.yaml")
	if err := os.WriteFile(cfgPath, []byte(r.Replace(config)), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &Collector{t: t, bin: bin, config: cfgPath, Dir: dir, Ports: ports}
	c.start()
	t.Cleanup(func() {
		if t.Failed() {
			c.keepEvidence()
			return
		}
		if c.Running() {
			c.Stop()
		}
	})
	return c
}

func (c *Collector) start() {
	c.t.Helper()
	c.logs = &syncBuffer{}
	c.exited = make(chan struct{})
	c.cmd = exec.Command(c.bin, "--config", c.config)
	c.cmd.Dir = c.Dir
	c.cmd.Stdout = c.logs
	c.cmd.Stderr = c.logs
	if err := c.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	go func() {
		c.exitErr = c.cmd.Wait()
		close(c.exited)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-c.exited:
			c.t.Fatalf("collector exited during start: %v\n%s", c.exitErr, tail(c.Logs(), 60))
		default:
		}
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", c.Ports.Health))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("collector not healthy after 60s:\n%s", tail(c.Logs(), 60))
}

// keepEvidence runs when the test failed: a collector still running is sent
// SIGQUIT, on which the Go runtime prints every goroutine's stack (what a
// stuck pipeline waits on), and the whole log goes to the artifacts
// directory; the test log gets its path and the tail.
func (c *Collector) keepEvidence() {
	if c.Running() {
		_ = c.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-c.exited:
		case <-time.After(10 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
	}
	msg := ""
	if dir, err := ArtifactsDir(); err == nil {
		name := strings.NewReplacer("/", "_", " ", "_").Replace(c.t.Name() + "-" + filepath.Base(c.Dir) + ".log")
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(c.Logs()), 0o644); err == nil {
			msg = " (whole log with goroutine stacks: " + path + ")"
		}
	}
	c.t.Logf("collector %s log tail%s:\n%s", filepath.Base(c.Dir), msg, tail(c.Logs(), 60))
}

// ArtifactsDir is where tests leave files for people to look at:
// $BATCHAUDIT_ARTIFACTS, or _build/test-artifacts in the repository.
func ArtifactsDir() (string, error) {
	dir := os.Getenv("BATCHAUDIT_ARTIFACTS")
	if dir == "" {
		root, err := RepoRoot()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, "_build", "test-artifacts")
	}
	return dir, os.MkdirAll(dir, 0o755)
}

// Restart starts the collector again with the same config and directory.
func (c *Collector) Restart() { c.t.Helper(); c.start() }

// Running reports whether the process is alive.
func (c *Collector) Running() bool {
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// Stop sends SIGTERM and waits for a clean exit (the collector drains its
// pipelines on shutdown); it fails the test if the exit is not clean.
func (c *Collector) Stop() {
	c.t.Helper()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		if c.exitErr != nil {
			c.t.Errorf("collector exited with %v\n%s", c.exitErr, tail(c.Logs(), 40))
		}
	case <-time.After(60 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
		c.t.Errorf("collector did not stop within 60s")
	}
}

// Kill9 kills the collector without any chance to flush.
func (c *Collector) Kill9() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.exited
}

// Logs returns what the collector printed so far.
func (c *Collector) Logs() string { return c.logs.String() }

// HTTPEndpoint is the base URL of the receiver's HTTP server.
func (c *Collector) HTTPEndpoint() string { return fmt.Sprintf("http://127.0.0.1:%d", c.Ports.HTTP) }

// Metric returns the sum of all samples of a Prometheus metric from the
// collector's own telemetry endpoint whose labels contain every filter.
func (c *Collector) Metric(name string, filters ...string) (float64, error) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", c.Ports.Metrics))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	var sum float64
	found := false
lines:
	for _, line := range strings.Split(buf.String(), "\n") {
		if !strings.HasPrefix(line, name) || strings.HasPrefix(line, "#") {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		for _, f := range filters {
			if !strings.Contains(rest, f) {
				continue lines
			}
		}
		var v float64
		if _, err := fmt.Sscan(rest[strings.LastIndex(rest, " ")+1:], &v); err == nil {
			sum += v
			found = true
		}
	}
	if !found {
		return 0, fmt.Errorf("metric %s%v not found", name, filters)
	}
	return sum, nil
}

// RunCommand runs a command to completion with a timeout and returns its
// combined output, failing the test on a non-zero exit.
func RunCommand(t testing.TB, timeout time.Duration, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Eventually polls cond until it returns nil or the timeout passes, then
// fails with the last error. It waits for asynchronous delivery; it does not
// measure performance.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("condition not met within %s: %v", timeout, err)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// CPUSeconds returns the user+system CPU time the collector process used so
// far, to report the collector's CPU share in load tests.
func (c *Collector) CPUSeconds() (float64, error) { return ProcCPUSeconds(c.cmd.Process.Pid) }

// Pid is the collector's process id.
func (c *Collector) Pid() int { return c.cmd.Process.Pid }

// ProcCPUSeconds returns the user+system CPU time process pid used so far
// (Linux /proc).
func ProcCPUSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("unexpected /proc stat format")
	}
	var utime, stime float64
	fmt.Sscan(fields[11], &utime)
	fmt.Sscan(fields[12], &stime)
	return (utime + stime) / 100, nil // USER_HZ is 100 on Linux
}

// ProcWrittenBytes is what process pid caused to be written to storage
// (/proc/PID/io write_bytes).
func ProcWrittenBytes(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes:"); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("no write_bytes in /proc/%d/io", pid)
}

// Memory is a process's memory from /proc/PID/status, in MiB: VmRSS (all
// resident pages, file-backed ones included), RssAnon (heap and stacks,
// without the page cache of mapped files) and VmHWM (peak VmRSS).
type Memory struct{ RSS, Anon, Peak float64 }

// ProcMemory reads process pid's memory.
func ProcMemory(pid int) (Memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Memory{}, err
	}
	var m Memory
	for _, line := range strings.Split(string(b), "\n") {
		var kb float64
		switch {
		case strings.HasPrefix(line, "VmRSS:"):
			fmt.Sscan(strings.TrimPrefix(line, "VmRSS:"), &kb)
			m.RSS = kb / 1024
		case strings.HasPrefix(line, "RssAnon:"):
			fmt.Sscan(strings.TrimPrefix(line, "RssAnon:"), &kb)
			m.Anon = kb / 1024
		case strings.HasPrefix(line, "VmHWM:"):
			fmt.Sscan(strings.TrimPrefix(line, "VmHWM:"), &kb)
			m.Peak = kb / 1024
		}
	}
	return m, nil
}

// Memory returns the collector's resident memory now and its peak so far
// (Linux /proc VmRSS and VmHWM), in bytes.
func (c *Collector) Memory() (rss, peak int64, err error) {
	m, err := ProcMemory(c.cmd.Process.Pid)
	return int64(m.RSS * (1 << 20)), int64(m.Peak * (1 << 20)), err
}
