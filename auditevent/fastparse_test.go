package auditevent

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// slowDecode is the reference: encoding/json with numbers normalized.
func slowDecode(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	for k, v := range m {
		m[k] = normalizeNumbers(v)
	}
	return m, nil
}

// richDocs are the canonical documents of richEvents.
func richDocs(t testing.TB) [][]byte {
	var docs [][]byte
	for _, e := range richEvents() {
		doc, err := e.AppendCanonical(nil)
		require.NoError(t, err)
		docs = append(docs, doc)
	}
	return docs
}

func fastParseSeeds(t testing.TB) [][]byte {
	return append(richDocs(t),
		[]byte(`{}`), []byte(` {"a" : [ 1 , -0, 0.5, 1e3, 1E-2, -12.75e+1, 9223372036854775807, 9223372036854775808, 1e400 ] } `),
		[]byte(`{"a":01}`), []byte(`{"a":1.}`), []byte(`{"a":.5}`), []byte(`{"a":-}`), []byte(`{"a":1e}`), []byte(`{"a":1e+}`),
		[]byte(`{"s":"\u00e9\ud83d\ude00\n\/\"\\"}`), []byte(`{"s":"\ud83d"}`), []byte(`{"s":"\udc00x"}`), []byte("{\"s\":\"\xff\"}"),
		[]byte(`{"a":1} {"b":2}`), []byte(`{"a":1,}`), []byte(`{"a":[1,]}`), []byte(`{"a":tru}`), []byte(`{"a":null,"a":true}`),
		[]byte(`[1]`), []byte(`"x"`), []byte(`{"a":{"b":{"c":[[[]]]}}}`), []byte("{\"a\":\"tab\there\"}"),
	)
}

// The fast decoder either declines or agrees exactly with encoding/json.
func FuzzParseCanonicalFast(f *testing.F) {
	for _, s := range fastParseSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := fastDecode(b)
		if !ok {
			return
		}
		want, err := slowDecode(b)
		require.NoError(t, err, "fast path accepted what encoding/json refuses: %q", b)
		require.Equal(t, want, got, "%q", b)
	})
}

// Canonical documents take the fast path; otherwise the fuzz test above
// would pass by always declining.
func TestFastDecodeTakesCanonicalDocuments(t *testing.T) {
	for _, e := range richEvents() {
		doc, err := e.AppendCanonical(nil)
		require.NoError(t, err)
		got, ok := fastDecode(doc)
		require.True(t, ok, "%s", doc)
		want, err := slowDecode(doc)
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
	for _, bad := range []string{`{"a":01}`, `{"a":1.}`, `{"a":1,}`, `{"a":1} x`, "{\"s\":\"\xff\"}", `{"s":"\ud83d"}`} {
		_, ok := fastDecode([]byte(bad))
		assert.False(t, ok, bad)
	}
}

func BenchmarkParseCanonical(b *testing.B) {
	docs := richDocs(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := ParseCanonical(docs[i%len(docs)]); err != nil {
			b.Fatal(err)
		}
	}
}

// plainWord agrees with plainByte on every word: exhaustively for each
// byte value in each position among plain neighbours, and at random.
func TestPlainWord(t *testing.T) {
	ref := func(b []byte) bool {
		for _, c := range b {
			if !plainByte[c] {
				return false
			}
		}
		return true
	}
	check := func(b []byte) {
		if got, want := plainWord(binary.LittleEndian.Uint64(b)), ref(b); got != want {
			t.Fatalf("plainWord(%q) = %v, want %v", b, got, want)
		}
	}
	for pos := 0; pos < 8; pos++ {
		for v := 0; v < 256; v++ {
			for _, fill := range []byte{'a', 0x20, 0x7e, 0x21, 0x5d, 0x23} {
				b := []byte{fill, fill, fill, fill, fill, fill, fill, fill}
				b[pos] = byte(v)
				check(b)
			}
		}
	}
	rnd := rand.New(rand.NewSource(1))
	alphabet := []byte{0, 0x1f, 0x20, 0x21, '"', '\\', 0x5b, 0x5d, 0x7f, 0x80, 0xff, 'a', 'Z', '0'}
	b := make([]byte, 8)
	for range 1_000_000 {
		for i := range b {
			b[i] = alphabet[rnd.Intn(len(alphabet))]
		}
		check(b)
	}
}
