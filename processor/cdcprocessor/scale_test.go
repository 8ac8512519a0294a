//go:build cdcscale

package cdcprocessor

// Loads many keys through the real file storage extension and prints the
// process memory, showing that memory stays bounded while the state grows
// on disk. Default 200k keys; the 10M run:
//
//	CDC_SCALE_KEYS=10000000 go test -tags cdcscale -run TestScaleRSS -v -timeout 6h ./processor/cdcprocessor/

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestScaleRSS(t *testing.T) {
	keys := 200_000
	if v := os.Getenv("CDC_SCALE_KEYS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err)
		keys = n
	}
	dir := t.TempDir()
	ext := fileStorage(t, dir)
	defer func() { _ = ext.Shutdown(context.Background()) }()
	p := benchProcessor(t, ext)
	defer func() { _ = p.Shutdown(context.Background()) }()

	start := time.Now()
	step := max(keys/10, benchBatch)
	for from := 0; from < keys; from += benchBatch {
		n := min(benchBatch, keys-from)
		require.NoError(t, p.ConsumeLogs(context.Background(), benchLogs("load", from, n, 0)))
		if (from+n)%step == 0 || from+n == keys {
			report(t, dir, from+n, time.Since(start))
		}
	}
	// A warm pass over the first 100k keys (updates) at full state size.
	warm := time.Now()
	w := min(keys, 100_000)
	for from := 0; from < w; from += benchBatch {
		require.NoError(t, p.ConsumeLogs(context.Background(), benchLogs("warm", from, min(benchBatch, w-from), 1)))
	}
	t.Logf("warm pass: %d updates in %v (%.0f events/s)", w, time.Since(warm), float64(w)/time.Since(warm).Seconds())
	report(t, dir, keys, time.Since(start))
}

func report(t *testing.T, dir string, keys int, elapsed time.Duration) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rss, hwm := procStatus("VmRSS"), procStatus("VmHWM")
	var size int64
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			size += st.Size()
		}
	}
	t.Logf("keys=%d elapsed=%v rate=%.0f/s heap_inuse=%dMiB rss=%s peak_rss=%s state_file=%dMiB",
		keys, elapsed.Round(time.Millisecond), float64(keys)/elapsed.Seconds(), ms.HeapInuse>>20, rss, hwm, size>>20)
}

// procStatus reads a field of /proc/self/status (e.g. "VmRSS: 123 kB").
func procStatus(field string) string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return "n/a"
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), field+":"); ok {
			return strings.Join(strings.Fields(v), "")
		}
	}
	return fmt.Sprintf("no %s", field)
}
