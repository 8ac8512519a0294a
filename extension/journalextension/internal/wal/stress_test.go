package wal

import (
	"context"
	"encoding/binary"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A reader follows concurrent writers across segment rotations while the
// records it has read are released (and their segments deleted): every
// record comes back intact, once, with its writer's content.
func TestReaderFollowsWritersAcrossReleases(t *testing.T) {
	l := open(t, t.TempDir(), func(o *Options) { o.SegmentBytes = 1 << 20 })
	defer l.Close()
	ctx := context.Background()
	const writers, per = 4, 150
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			rnd := rand.New(rand.NewSource(int64(g)))
			for i := range per {
				p := make([]byte, 8+rnd.Intn(200<<10))
				binary.LittleEndian.PutUint64(p, uint64(g*per+i))
				for k := 8; k < len(p); k++ {
					p[k] = byte(k + g)
				}
				assert.NoError(t, l.Append(ctx, p))
			}
		})
	}
	r, err := l.NewReader(0)
	require.NoError(t, err)
	defer r.Close()
	seen := map[uint64]bool{}
	deadline := time.Now().Add(time.Minute)
	for len(seen) < writers*per && time.Now().Before(deadline) {
		rec, ok, err := r.Next()
		require.NoError(t, err, "after %d records", len(seen))
		if !ok {
			l.Wait(ctx, r.Pos(), 10*time.Millisecond)
			continue
		}
		id := binary.LittleEndian.Uint64(rec.Payload)
		g := int(id) / per
		for k := 8; k < len(rec.Payload); k++ {
			if rec.Payload[k] != byte(k+g) {
				t.Fatalf("record %d is corrupt at byte %d", id, k)
			}
		}
		assert.False(t, seen[id], "record %d read twice", id)
		seen[id] = true
		if len(seen)%7 == 0 {
			require.NoError(t, l.Release(rec.Next))
		}
	}
	wg.Wait()
	assert.Len(t, seen, writers*per)
}
