package state

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func sampleRecord() Record {
	return Record{
		Slot: 7, LastRun: 42, DeletedRun: 0, RecordID: "A-1", Partition: "2026-11-01",
		RecHash: make([]byte, 32), CmpHash: append(make([]byte, 31), 1),
		Fields:   []FieldSum{{"amount", 1}, {"customer", 2}},
		FieldsOK: true,
		Old:      []byte(`{"amount":1}`),
		Memo: []Memo{{Event: [16]byte{1}, Run: 42, Change: ChangeUpdate, PrevHash: make([]byte, 32),
			Fields: []string{"amount"}, Old: []byte(`{"amount":0}`)}},
	}
}

func TestRecordRoundTrip(t *testing.T) {
	for _, r := range []Record{sampleRecord(), {RecordID: "x", RecHash: []byte{0xff, 'm', 'd', '5'}, Tombstone: true, DeletedRun: 3}} {
		var back Record
		require.NoError(t, back.Unmarshal(r.Marshal(nil)))
		assert.Equal(t, r, back)
	}
}

func TestRecordCorruptNeverPanics(t *testing.T) {
	b := func() []byte { r := sampleRecord(); return r.Marshal(nil) }()
	for i := 0; i < len(b); i++ {
		var r Record
		assert.Error(t, r.Unmarshal(b[:i]), "truncated at %d", i)
	}
	var r Record
	assert.Error(t, r.Unmarshal([]byte{9, 0}), "unknown version")
	// Garbage lengths must not allocate or panic.
	assert.Error(t, r.Unmarshal([]byte{recordVersion, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}))
}

func TestPushMemoKeepsCurrentRun(t *testing.T) {
	var r Record
	for i := byte(1); i <= 5; i++ {
		r.PushMemo(Memo{Event: [16]byte{i}, Run: 1}, 3)
	}
	require.Len(t, r.Memo, 3)
	assert.Equal(t, byte(5), r.Memo[0].Event[0])
	_, ok := r.FindMemo([16]byte{3})
	assert.True(t, ok)
	r.PushMemo(Memo{Event: [16]byte{9}, Run: 2}, 3)
	require.Len(t, r.Memo, 1, "a later run drops older runs' memos")
}

func TestStoreIndexAndReload(t *testing.T) {
	ctx := context.Background()
	mem := NewMemoryClient()
	var reads, writes int
	s, err := Open(ctx, mem, func(op string, _ time.Duration) {
		if op == "read" {
			reads++
		} else {
			writes++
		}
	})
	require.NoError(t, err)
	ds := DatasetID("target", "ns", "t")
	m := s.Meta(ds, "target", "ns", "t")
	for i := 0; i < ChunkSize+3; i++ {
		slot, err := s.AppendKey(ctx, ds, HashKey(string(rune('a'+i%26))+string(rune(i))))
		require.NoError(t, err)
		assert.Equal(t, uint64(i), slot)
		if i == 10 {
			require.NoError(t, s.Flush(ctx)) // the tail is continued after a flush
		}
	}
	m.Live = ChunkSize + 3
	s.SaveMeta(ds)
	r, err := s.Run(ctx, RunID("b1"), "b1")
	require.NoError(t, err)
	r.Touch(ds, "p1")
	r.Touch(ds, "p1")
	r.Counts.Inserted = 3
	s.SaveRun(r, time.Unix(1000, 0))
	require.NoError(t, s.Flush(ctx))
	assert.Equal(t, 2, writes)
	assert.Equal(t, 0, s.Pending())

	s2, err := Open(ctx, mem, nil)
	require.NoError(t, err)
	assert.Equal(t, *m, *s2.Known(ds))
	assert.Equal(t, uint64(2), s2.Chunks(ds))
	k0, err := s2.ReadChunk(ctx, ds, 0)
	require.NoError(t, err)
	assert.Len(t, k0, ChunkSize)
	k1, err := s2.ReadChunk(ctx, ds, 1)
	require.NoError(t, err)
	assert.Len(t, k1, 3)
	r2, err := s2.Run(ctx, RunID("b1"), "b1")
	require.NoError(t, err)
	assert.Equal(t, []RunDataset{{ID: ds, Partitions: []string{"p1"}}}, r2.Datasets)
	assert.Equal(t, int64(3), r2.Counts.Inserted)
	live, _ := s2.Keys()
	assert.Equal(t, uint64(ChunkSize+3), live)

	assert.Equal(t, 1, s2.ExpireRuns(time.Unix(2000, 0)))
	require.NoError(t, s2.Flush(ctx))
	v, err := mem.Get(ctx, runKey(RunID("b1")))
	require.NoError(t, err)
	assert.Nil(t, v)
}
