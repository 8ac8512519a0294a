package wal

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func open(t *testing.T, dir string, mod ...func(*Options)) *Log {
	t.Helper()
	o := Options{Dir: dir, SegmentBytes: 1 << 10}
	for _, f := range mod {
		f(&o)
	}
	l, err := Open(o)
	require.NoError(t, err)
	return l
}

func readAll(t *testing.T, l *Log, from int64) []Record {
	t.Helper()
	r, err := l.NewReader(from)
	require.NoError(t, err)
	defer r.Close()
	var out []Record
	for {
		rec, ok, err := r.Next()
		require.NoError(t, err)
		if !ok {
			return out
		}
		rec.Payload = append([]byte(nil), rec.Payload...)
		out = append(out, rec)
	}
}

func TestAppendReadAcrossSegmentsAndRestart(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir)
	ctx := context.Background()
	var want []string
	for i := range 100 {
		p := fmt.Sprintf("record-%03d-%s", i, string(make([]byte, i%40)))
		want = append(want, p)
		require.NoError(t, l.Append(ctx, []byte(p)))
	}
	require.NoError(t, l.Append(ctx, nil)) // a tick
	recs := readAll(t, l, 0)
	require.Len(t, recs, 101)
	for i, p := range want {
		assert.Equal(t, p, string(recs[i].Payload))
		if i > 0 {
			assert.Equal(t, recs[i-1].Next, recs[i].Offset)
			assert.False(t, recs[i].Time.Before(recs[i-1].Time), "append times never go backwards")
		}
	}
	assert.Empty(t, recs[100].Payload)
	assert.Equal(t, l.End(), recs[100].Next)
	segs, err := listSegments(dir)
	require.NoError(t, err)
	assert.Greater(t, len(segs), 3, "1 KiB segments rotate")

	// A record in the middle can be the start of a reader.
	mid := readAll(t, l, recs[50].Offset)
	assert.Equal(t, want[50], string(mid[0].Payload))

	end := l.End()
	require.NoError(t, l.Close())
	l = open(t, dir)
	defer l.Close()
	assert.Equal(t, end, l.End())
	require.NoError(t, l.Append(ctx, []byte("after restart")))
	recs = readAll(t, l, 0)
	require.Len(t, recs, 102)
	assert.Equal(t, "after restart", string(recs[101].Payload))
}

func TestTornTailIsCutOnOpen(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, func(o *Options) { o.SegmentBytes = 1 << 20 })
	ctx := context.Background()
	require.NoError(t, l.Append(ctx, []byte("one")))
	require.NoError(t, l.Append(ctx, []byte("two")))
	good := l.End()
	require.NoError(t, l.Close())

	// A crash in the middle of a write leaves part of a record behind.
	path := segmentPath(dir, 0)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.Write(appendRecord(nil, 1, []byte("three, never acknowledged"))[:20])
	require.NoError(t, err)
	require.NoError(t, f.Close())

	l = open(t, dir, func(o *Options) { o.SegmentBytes = 1 << 20 })
	defer l.Close()
	assert.Equal(t, good, l.End())
	require.NoError(t, l.Append(ctx, []byte("three")))
	recs := readAll(t, l, 0)
	require.Len(t, recs, 3)
	assert.Equal(t, "three", string(recs[2].Payload))

	// A flipped byte inside a record is caught by the checksum.
	require.NoError(t, l.Close())
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	data[len(data)-1] ^= 0xff
	require.NoError(t, os.WriteFile(path, data, 0o600))
	l = open(t, dir, func(o *Options) { o.SegmentBytes = 1 << 20 })
	defer l.Close()
	assert.Len(t, readAll(t, l, 0), 2)
}

func TestReleaseDeletesDeliveredSegments(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir)
	defer l.Close()
	ctx := context.Background()
	for range 50 {
		require.NoError(t, l.Append(ctx, make([]byte, 100)))
	}
	recs := readAll(t, l, 0)
	require.NoError(t, l.Release(recs[30].Offset))
	assert.LessOrEqual(t, l.Start(), recs[30].Offset)
	assert.Greater(t, l.Start(), int64(0))
	_, err := l.NewReader(0)
	assert.Error(t, err, "released records are gone")
	assert.Len(t, readAll(t, l, recs[30].Offset), 20)

	// Releasing everything leaves no record on disk: the active segment is
	// rotated and deleted as well.
	require.NoError(t, l.Release(l.End()))
	var size int64
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range ents {
		st, err := os.Stat(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		size += st.Size()
	}
	assert.Zero(t, size)
	require.NoError(t, l.Append(ctx, []byte("next")))
	assert.Len(t, readAll(t, l, l.Start()), 1)
}

func TestBacklogLimit(t *testing.T) {
	l := open(t, t.TempDir(), func(o *Options) { o.MaxBacklog = 300 })
	defer l.Close()
	ctx := context.Background()
	require.NoError(t, l.Append(ctx, make([]byte, 100)))
	require.NoError(t, l.Append(ctx, make([]byte, 100)))
	assert.ErrorIs(t, l.Append(ctx, make([]byte, 100)), ErrFull)
	require.NoError(t, l.Release(l.End()))
	assert.NoError(t, l.Append(ctx, make([]byte, 100)))
}

func TestConcurrentAppendsAreGroupCommitted(t *testing.T) {
	var mu sync.Mutex
	commits, records := 0, 0
	l := open(t, t.TempDir(), func(o *Options) {
		o.SegmentBytes = 64 << 20
		o.Fsync = true
		o.OnCommit = func(n, _ int, _ time.Duration) {
			mu.Lock()
			commits++
			records += n
			mu.Unlock()
		}
	})
	defer l.Close()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				assert.NoError(t, l.Append(context.Background(), fmt.Appendf(nil, "%d-%d", g, i)))
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, r := range readAll(t, l, 0) {
		seen[string(r.Payload)] = true
	}
	assert.Len(t, seen, 1600, "every acknowledged append is readable, once")
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, 1600, records)
	t.Logf("1600 appends from 8 goroutines in %d commits", commits)
}

func TestWaitWakesOnAppend(t *testing.T) {
	l := open(t, t.TempDir())
	defer l.Close()
	ctx := context.Background()
	assert.False(t, l.Wait(ctx, l.End(), 10*time.Millisecond))
	go func() { _ = l.Append(ctx, []byte("x")) }()
	assert.True(t, l.Wait(ctx, 0, 5*time.Second))
}

func TestModifiedDirectoryIsRefused(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir)
	for range 30 {
		require.NoError(t, l.Append(context.Background(), make([]byte, 100)))
	}
	require.NoError(t, l.Close())
	segs, err := listSegments(dir)
	require.NoError(t, err)
	require.Greater(t, len(segs), 2)
	require.NoError(t, os.Truncate(segs[0].path, 10))
	_, err = Open(Options{Dir: dir, SegmentBytes: 1 << 10})
	assert.ErrorContains(t, err, "was modified")
}
