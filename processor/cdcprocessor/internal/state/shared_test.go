package state

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The record state key layout is part of the stored state: it must not
// change.
func TestRecordKeyLayout(t *testing.T) {
	ds := DatasetID("target", "pg://db", "sales.orders")
	k := HashKey("K1")
	want := "r:" + ds + ":" + hex.EncodeToString(k[:])
	assert.Equal(t, want, RecordKey(ds, k))
	assert.Len(t, want, RecordKeyLen)
	assert.Equal(t, "x"+want, string(AppendRecordKey([]byte("x"), ds, k)))
}

// UnmarshalShared with batch slabs and the recent-names guess decodes
// exactly what Unmarshal does, across records with different field lists
// and across Reset.
func TestUnmarshalSharedSlabs(t *testing.T) {
	a := sampleRecord()
	b := sampleRecord()
	b.RecordID, b.Fields = "B-2", []FieldSum{{"amount", 3}, {"country", 4}, {"customer", 5}}
	b.Memo[0].Fields = []string{"country", "amount"}
	c := sampleRecord()
	c.Fields, c.Memo = nil, nil
	var in Interner
	var slabs Slabs
	for round := 0; round < 3; round++ {
		in.UseSlabs(&slabs)
		var got []Record
		for _, r := range []Record{a, b, c, a} {
			var back Record
			require.NoError(t, back.UnmarshalShared(r.Marshal(nil), &in))
			assert.Equal(t, r, back)
			got = append(got, back)
		}
		assert.Equal(t, "B-2", got[1].RecordID)
		in.UseSlabs(nil)
		slabs.Reset()
	}
	// Without batch slabs, the Interner's own arrays are used.
	var back Record
	require.NoError(t, back.UnmarshalShared(b.Marshal(nil), &in))
	assert.Equal(t, b, back)
}

// The run registry is the JSON object encoding/json gives for
// map[string]int64 (run id in hex → unix seconds), written by hand; it
// round-trips through Open and drives ExpireRuns.
func TestRunRegistryFormat(t *testing.T) {
	ctx := context.Background()
	mem := NewMemoryClient()
	s, err := Open(ctx, mem, nil)
	require.NoError(t, err)
	want := map[string]int64{}
	for i := range 20 {
		batch := "b" + strconv.Itoa(i)
		r, err := s.Run(ctx, RunID(batch), batch)
		require.NoError(t, err)
		s.SaveRun(r, time.Unix(1000+int64(i), 0))
		want[strconv.FormatUint(RunID(batch), 16)] = 1000 + int64(i)
	}
	require.NoError(t, s.Flush(ctx))
	raw, err := mem.Get(ctx, runsKey)
	require.NoError(t, err)
	var got map[string]int64
	require.NoError(t, json.Unmarshal(raw, &got))
	assert.Equal(t, want, got)

	s2, err := Open(ctx, mem, nil)
	require.NoError(t, err)
	assert.Equal(t, 20, s2.Runs())
	assert.Equal(t, 5, s2.ExpireRuns(time.Unix(1005, 0)))
	assert.Equal(t, 15, s2.Runs())
	require.NoError(t, s2.Flush(ctx))
	s3, err := Open(ctx, mem, nil)
	require.NoError(t, err)
	assert.Equal(t, 15, s3.Runs())
}
