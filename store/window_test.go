package store

import (
	"fmt"
	"testing"
)

// The window never forgets a key among the newest half of its capacity,
// and a write of fresh keys rarely finds one that may be stored (each such
// key costs Elasticsearch a lookup before numbering).
func TestWindowRemembersAndRarelyMistakes(t *testing.T) {
	const capacity = 200_000
	w := newWindow(capacity)
	for i := range capacity {
		w.add(Key{ID: fmt.Sprintf("old-%d", i)})
	}
	for i := capacity / 2; i < capacity; i++ {
		if !w.mayHold(Key{ID: fmt.Sprintf("old-%d", i)}) {
			t.Fatalf("key old-%d forgotten", i)
		}
	}
	mistaken := 0
	for i := range capacity {
		if w.mayHold(Key{ID: fmt.Sprintf("new-%d", i)}) {
			mistaken++
		}
	}
	// Two filters at 1e-5 each: about 4 expected in 200,000.
	if mistaken > 20 {
		t.Fatalf("%d of %d fresh keys may be stored, want about 4", mistaken, capacity)
	}
	t.Logf("%d of %d fresh keys may be stored", mistaken, capacity)
}
