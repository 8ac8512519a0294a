package cdcprocessor

import (
	"encoding/binary"
	"encoding/hex"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/canonical"
)

// encodeCases are record data maps covering every value type, escaping,
// number formatting and key ordering (including RFC 8785's UTF-16 order).
func encodeCases() map[string]pcommon.Map {
	cases := map[string]pcommon.Map{}
	add := func(name string, raw map[string]any) {
		m := pcommon.NewMap()
		require.NoError(nil, m.FromRaw(raw))
		cases[name] = m
	}
	add("plain", map[string]any{"order_id": "K1", "amount": 12.5, "customer": "Alice", "updated_at": "2026-11-01", "n": int64(7)})
	add("numbers", map[string]any{"a": 1e21, "b": -0.0, "c": 1e-7, "d": 333333333.33333329, "e": float64(1 << 53), "f": -42.0,
		"g": int64(1 << 53), "h": int64(-(1 << 53)), "i": 9007199254740993.0, "j": 0.1})
	add("strings", map[string]any{"q": `say "hi"`, "b": `a\b`, "c": "tab\there", "u": "€ and 😀", "e": "", "ctl": "\x01"})
	add("nested", map[string]any{"m": map[string]any{"z": 1.0, "a": []any{true, nil, "x"}}, "s": []any{1.5, map[string]any{}}, "t": true, "f": false, "n": nil})
	add("keys", map[string]any{"\u20ac": 1.0, "\r": 2.0, "\ufb33": 3.0, "1": 4.0, "\U0001F600": 5.0, "\u0080": 6.0, "\u00f6": 7.0, `q"k`: 8.0})
	add("empty", map[string]any{})
	m := pcommon.NewMap()
	m.PutEmptyBytes("bin").FromRaw([]byte{1, 2, 3})
	m.PutStr("id", "x")
	cases["bytes"] = m
	return cases
}

// TestRecordEncMatchesCanonical: the hashes the processor assembles from
// member encodings equal canonical.Hash of the record (what jobs and the
// previous implementation compute), with and without a projection, and the
// per-field sums equal canonical.FieldHasher's.
func TestRecordEncMatchesCanonical(t *testing.T) {
	for _, key := range [][]byte{nil, []byte("k")} {
		for name, m := range encodeCases() {
			for _, ds := range []DatasetConfig{{}, {IgnoreFields: []string{"order_id", "b", "m"}}, {IncludeFields: []string{"amount", "q", "\u20ac", "nope"}}} {
				d := newDataset(ds, nil)
				raw := m.AsRaw()
				enc := &recordEnc{}
				enc.encode(m, d)

				full, ok := enc.hash(true)
				require.True(t, ok, name)
				want, err := canonical.Hash(raw)
				require.NoError(t, err)
				assert.Equal(t, want, hex.EncodeToString(full[:]), name)

				proj := d.project(raw)
				cmp, ok := enc.hash(false)
				require.True(t, ok, name)
				want, err = canonical.Hash(proj)
				require.NoError(t, err)
				assert.Equal(t, want, hex.EncodeToString(cmp[:]), "%s projected %v", name, ds)

				sums, pairs, ends, ok := enc.compared(&prepSlab{})
				require.True(t, ok)
				newFieldHasher(key).sumAll(sums, pairs, ends)
				require.Len(t, sums, len(proj), name)
				fh := canonical.NewFieldHasher(key)
				for i, s := range sums {
					if i > 0 {
						assert.Less(t, sums[i-1].Name, s.Name, "sorted by name")
					}
					b, err := fh.Sum(nil, s.Name, proj[s.Name])
					require.NoError(t, err)
					assert.Equal(t, binary.LittleEndian.Uint64(b), s.Sum, "%s field %q", name, s.Name)
				}
			}
		}
	}
}

func TestRecordEncKeyMatchesCanonical(t *testing.T) {
	m := pcommon.NewMap()
	require.NoError(t, m.FromRaw(map[string]any{"id": "K1", "n": 12.0, "f": 1.5, "o": map[string]any{"b": 1.0, "a": "x"}}))
	enc := &recordEnc{}
	enc.encode(m, newDataset(DatasetConfig{}, nil))
	raw := m.AsRaw()
	for _, names := range [][]string{{"id"}, {"n"}, {"f"}, {"o"}, {"id", "n"}, {"o", "id", "f"}} {
		got, ok, err := enc.key(names)
		require.NoError(t, err)
		require.True(t, ok)
		var want string
		if s, isStr := raw[names[0]].(string); len(names) == 1 && isStr {
			want = s
		} else {
			vals := make([]any, len(names))
			for i, n := range names {
				vals[i] = raw[n]
			}
			var v any = vals
			if len(names) == 1 {
				v = vals[0]
			}
			b, err := canonical.Marshal(v)
			require.NoError(t, err)
			want = string(b)
		}
		assert.Equal(t, want, got, names)
	}
	_, ok, err := enc.key([]string{"id", "missing"})
	require.NoError(t, err)
	assert.False(t, ok)
}

// TestRecordEncUnhashable: a value canonical JSON cannot express fails
// only when it is part of what is hashed.
func TestRecordEncUnhashable(t *testing.T) {
	m := pcommon.NewMap()
	m.PutStr("id", "K1")
	m.PutDouble("bad", math.NaN())
	enc := &recordEnc{}
	enc.encode(m, newDataset(DatasetConfig{IgnoreFields: []string{"bad"}}, nil))
	_, ok := enc.hash(false)
	assert.True(t, ok, "ignored field is not hashed")
	_, ok = enc.hash(true)
	assert.False(t, ok)
	_, _, _, ok = enc.compared(&prepSlab{})
	assert.True(t, ok)
	_, _, err := enc.key([]string{"bad"})
	assert.ErrorIs(t, err, errUnhashable)
}

// TestReadEventMatchesFromLogRecord: the fields classification reads
// equal auditevent.FromLogRecord's, including type conversion and the
// resource fallback of the batch id.
func TestReadEventMatchesFromLogRecord(t *testing.T) {
	lr := plog.NewLogRecord()
	e := auditevent.Event{ID: "e1", Name: auditevent.RecordWrite, RecordID: "R1", RecordHash: "ab", Partition: "p1",
		KeyFields: []string{"a", "b"}, Target: auditevent.Dataset{Namespace: "ns", Name: "t"},
		Source: auditevent.Dataset{Namespace: "sns", Name: "s"}, RecordData: map[string]any{"a": 1.0}}
	e.ToLogRecord(lr)
	lr.Attributes().PutInt(auditevent.AttrRecordID, 42) // a number where a string is expected
	res := pcommon.NewResource()
	res.Attributes().PutStr(auditevent.AttrBatchID, "from-resource")

	var it item
	readEvent(&it, lr, res)
	want := auditevent.FromLogRecord(lr, res)
	assert.Equal(t, eventInfo{ID: want.ID, Name: want.Name, BatchID: want.BatchID, RecordID: want.RecordID, RecordHash: want.RecordHash,
		Partition: want.Partition, KeyFields: want.KeyFields, Target: want.Target, Source: want.Source}, it.ev)
	assert.Equal(t, "42", it.ev.RecordID)
	assert.Equal(t, "from-resource", it.ev.BatchID)
	assert.True(t, it.hasData)
	assert.Equal(t, want.RecordData, it.rawData())

	lr.Attributes().PutStr(auditevent.AttrRecordData, "not a map")
	it = item{}
	readEvent(&it, lr, res)
	assert.False(t, it.hasData)
	assert.Nil(t, auditevent.FromLogRecord(lr, res).RecordData)
}

func TestEncodeHash(t *testing.T) {
	h := hashOfBytes("x")
	assert.Equal(t, h, decodeHash(encodeHash(h)))
	assert.Len(t, encodeHash(h), 32)
	for _, s := range []string{"ABCDEF" + h[6:], h[:63] + "g", "md5:abc"} {
		b := encodeHash(s)
		assert.Equal(t, byte(textHash), b[0], s)
		assert.Equal(t, s, decodeHash(b))
	}
}

func hashOfBytes(s string) string { return canonical.HashBytes([]byte(s)) }
