package canonical

import (
	"encoding/hex"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// RFC 8785 Appendix B: IEEE-754 bit patterns and their canonical text.
var numberVectors = []struct {
	bits uint64
	want string
}{
	{0x0000000000000000, "0"},
	{0x8000000000000000, "0"},
	{0x0000000000000001, "5e-324"},
	{0x8000000000000001, "-5e-324"},
	{0x7fefffffffffffff, "1.7976931348623157e+308"},
	{0xffefffffffffffff, "-1.7976931348623157e+308"},
	{0x4340000000000000, "9007199254740992"},
	{0xc340000000000000, "-9007199254740992"},
	{0x4430000000000000, "295147905179352830000"},
	{0x44b52d02c7e14af5, "9.999999999999997e+22"},
	{0x44b52d02c7e14af6, "1e+23"},
	{0x44b52d02c7e14af7, "1.0000000000000001e+23"},
	{0x444b1ae4d6e2ef4e, "999999999999999700000"},
	{0x444b1ae4d6e2ef4f, "999999999999999900000"},
	{0x444b1ae4d6e2ef50, "1e+21"},
	{0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"},
	{0x3eb0c6f7a0b5ed8d, "0.000001"},
	{0x41b3de4355555553, "333333333.3333332"},
	{0x41b3de4355555554, "333333333.33333325"},
	{0x41b3de4355555555, "333333333.3333333"},
	{0x41b3de4355555556, "333333333.3333334"},
	{0x41b3de4355555557, "333333333.33333343"},
	{0xbecbf647612f3696, "-0.0000033333333333333333"},
	{0x43143ff3c1cb0959, "1424953923781206.2"},
}

func TestNumbersRFC8785(t *testing.T) {
	for _, v := range numberVectors {
		got, err := Marshal(math.Float64frombits(v.bits))
		require.NoError(t, err)
		assert.Equal(t, v.want, string(got), "bits %016x", v.bits)
	}
}

func TestRFC8785Examples(t *testing.T) {
	// §3.2.2 example: whitespace, number and string normalization.
	in := `{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
	  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/", "literals": [null, true, false]}`
	want := `{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`
	assert.Equal(t, want, canon(t, in))

	// §3.2.3 example: keys sorted by UTF-16 code units (the emoji sorts before U+FB33).
	in = `{"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh",
	  "1": "One", "\ud83d\ude00": "Emoji: Grinning Face", "\u0080": "Control", "\u00f6": "Latin Small Letter O With Diaeresis"}`
	want = `{"\r":"Carriage Return","1":"One","` + "\u0080" + `":"Control","ö":"Latin Small Letter O With Diaeresis","€":"Euro Sign","😀":"Emoji: Grinning Face","` + "\ufb33" + `":"Hebrew Letter Dalet With Dagesh"}`
	assert.Equal(t, want, canon(t, in))
}

func canon(t *testing.T, in string) string {
	t.Helper()
	var v any
	require.NoError(t, json.Unmarshal([]byte(in), &v))
	out, err := Marshal(v)
	require.NoError(t, err)
	return string(out)
}

func TestGoTypesMatchDecodedJSON(t *testing.T) {
	type row struct {
		ID     int      `json:"id"`
		Amount float64  `json:"amount"`
		Tags   []string `json:"tags"`
	}
	a, err := Hash(row{ID: 7, Amount: 12.5, Tags: []string{"x"}})
	require.NoError(t, err)
	b, err := Hash(map[string]any{"tags": []any{"x"}, "amount": 12.5, "id": int64(7)})
	require.NoError(t, err)
	assert.Equal(t, a, b)
}

func TestRejects(t *testing.T) {
	for name, v := range map[string]any{
		"nan":       math.NaN(),
		"inf":       math.Inf(1),
		"bigint":    int64(1 << 60),
		"badutf8":   string([]byte{0xff, 0xfe}),
		"nestednan": map[string]any{"a": []any{math.NaN()}},
	} {
		_, err := Marshal(v)
		assert.Error(t, err, name)
		assert.True(t, strings.HasPrefix(err.Error(), "canonical: "), name)
	}
}

func TestFieldHasher(t *testing.T) {
	plain := NewFieldHasher(nil)
	h1, err := plain.Hash("country", "DE")
	require.NoError(t, err)
	h2, _ := plain.Hash("region", "DE")
	assert.NotEqual(t, h1, h2, "field name is part of the hash")
	keyed := NewFieldHasher([]byte("secret"))
	h3, _ := keyed.Hash("country", "DE")
	assert.NotEqual(t, h1, h3)
	h4, _ := NewFieldHasher([]byte("secret")).Hash("country", "DE")
	assert.Equal(t, h3, h4)
	// Golden value: sha256(`"country":"DE"`).
	assert.Equal(t, HashBytes([]byte(`"country":"DE"`)), h1)
	// Reusing one hasher (Reset) gives the same digests as fresh ones, and
	// Sum is the binary form of Hash.
	again, _ := keyed.Hash("country", "DE")
	assert.Equal(t, h3, again)
	sum, err := keyed.Sum([]byte{0xff}, "country", "DE")
	require.NoError(t, err)
	assert.Equal(t, byte(0xff), sum[0])
	assert.Equal(t, h3, hex.EncodeToString(sum[1:]))
}

func TestProject(t *testing.T) {
	rec := map[string]any{"id": 1, "name": "a", "updated_at": "x"}
	assert.Equal(t, map[string]any{"id": 1, "name": "a"}, Project(rec, nil, []string{"updated_at"}))
	assert.Equal(t, map[string]any{"name": "a"}, Project(rec, []string{"name", "missing"}, nil))
	assert.Equal(t, rec, Project(rec, nil, nil))
}

func FuzzMarshal(f *testing.F) {
	f.Add(`{"a":1,"b":[true,null,"x"]}`)
	f.Add(`[1e21, 0.000001, -0.0, "\u0000"]`)
	f.Fuzz(func(t *testing.T, in string) {
		var v any
		if json.Unmarshal([]byte(in), &v) != nil {
			return
		}
		out, err := Marshal(v)
		if err != nil {
			return
		}
		// Canonical output is valid JSON and a fixed point.
		var back any
		require.NoError(t, json.Unmarshal(out, &back))
		again, err := Marshal(back)
		require.NoError(t, err)
		require.Equal(t, string(out), string(again))
	})
}

func TestPseudonymize(t *testing.T) {
	key := []byte("0123456789abcdef")
	p := Pseudonym(key, "alice@example.com")
	// HMAC-SHA256 over the canonical JSON of the string (with its quotes),
	// the form reports compute for a subject: fixed, so stored pseudonyms
	// stay valid across releases. Computed independently with
	// printf '%s' '"alice@example.com"' | openssl dgst -sha256 -hmac 0123456789abcdef
	assert.Equal(t, "hmac-sha256:a7de83b39f8c4ee8d566143b2c9c79a871ac320f5ca34033a2c15207d73ee6a2", p)
	assert.True(t, IsPseudonym(p))
	assert.Equal(t, p, Pseudonymize(key, "alice@example.com"))
	assert.Equal(t, p, Pseudonymize(key, p), "a pseudonym is kept, not hashed again")
	assert.Equal(t, Pseudonym(key, 42.0), Pseudonymize(key, 42.0))
	assert.Nil(t, Pseudonymize(key, nil))
	assert.NotEqual(t, p, Pseudonym([]byte("another key 0123"), "alice@example.com"))
	for _, s := range []string{"hmac-sha256:", "hmac-sha256:" + strings.Repeat("A", 64), "hmac-sha256:" + strings.Repeat("0", 63), "alice"} {
		assert.False(t, IsPseudonym(s), s)
	}
}
