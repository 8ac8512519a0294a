package cpuclock

import (
	"crypto/sha256"
	"testing"
	"time"
)

func TestProcessAdvancesWithWork(t *testing.T) {
	before := Process()
	deadline := time.Now().Add(50 * time.Millisecond)
	buf := make([]byte, 4096)
	for time.Now().Before(deadline) {
		sum := sha256.Sum256(buf)
		buf[0] = sum[0]
	}
	if got := Process() - before; got <= 0 {
		t.Fatalf("CPU time did not advance over 50ms of busy work: %v", got)
	}
}
