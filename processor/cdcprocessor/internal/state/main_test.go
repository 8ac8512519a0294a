package state

import (
	"testing"

	"go.uber.org/goleak"
)

// The package starts no goroutines of its own; this keeps it so.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
