package auditevent

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testSelection holds a key of every kind of field, a group member and a
// key outside the model.
var testSelection = Select(AttrEventID, AttrBatchID, AttrRecordID, AttrUserID, AttrRecordsRead, AttrRecordsInserted,
	AttrPruneThrough, AttrUserRoles, AttrRecordData, AttrValidationActual, AttrTransformSequence, "custom.flag", "\u00e9t\u00e9")

// sameSelected asserts that got, from ParseSelected, has the fields of
// want, from ParseCanonical, that the selection covers.
func sameSelected(t *testing.T, want, got Event, sel Selection, doc []byte) {
	t.Helper()
	assert.Equal(t, want.Name, got.Name, "%q", doc)
	assert.Equal(t, want.Time, got.Time, "%q", doc)
	assert.Equal(t, [4]string{want.TraceID, want.SpanID, want.Severity, want.Body}, [4]string{got.TraceID, got.SpanID, got.Severity, got.Body}, "%q", doc)
	wa, ga := want.Attributes(), got.Attributes()
	for _, k := range sel.keys {
		assert.Equal(t, wa[k], ga[k], "%s in %q", k, doc)
		assert.Equal(t, want.Extra[k], got.Extra[k], "%s in %q", k, doc)
	}
}

// The selective parse never accepts what ParseCanonical refuses, and what
// it reads is what ParseCanonical reads.
func FuzzParseSelected(f *testing.F) {
	for _, s := range fastParseSeeds(f) {
		f.Add(s)
	}
	for _, s := range selectedSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want, werr := ParseCanonical(b)
		var got Event
		if !parseSelected(b, testSelection, &got) {
			return
		}
		require.NoError(t, werr, "the selective parse accepted what ParseCanonical refuses: %q", b)
		sameSelected(t, want, got, testSelection, b)
	})
}

var selectedSeeds = []string{
	`{"attributes":{},"name":"n","time":"2026-01-02T03:04:05Z"}`,
	`{"attributes":{"batchaudit.batch.id":"a","batchaudit.batch.id":"b"},"name":"n","time":"2026-01-02T03:04:05Z"}`,
	`{"attributes":{"batchaudit.batch.id":7,"batchaudit.batch.id":"s","batchaudit.record.id":"r","batchaudit.record.id":[1]},"name":"n","time":"2026-01-02T03:04:05Z"}`,
	`{"attributes":{"batchaudit.batch.id":7,"batchaudit.record.id":{"x":1}},"name":"n","time":"2026-01-02T03:04:05Z"}`,
	`{"attributes":{"batchaudit.batch.records.read":3,"batchaudit.batch.records.written":"x"},"name":"n","time":"2026-01-02T03:04:05Z"}`,
	`{"attributes":{"batchaudit.batch.records.read":3},"attributes":{},"name":"n","time":"2026-01-02T03:04:05Z"}`,
	`{"attributes":{"b\u0061tchaudit.batch.id":"esc","x":"\ud83d"},"name":"n","time":"2026-01-02T03:04:05Z"}`,
	`{"attributes":{"x":[1e400]},"name":"n","time":"2026-01-02T03:04:05Z"}`,
	`{"attributes":[],"name":"n","time":"2026-01-02T03:04:05Z"}`,
	`{"attributes":{},"name":1,"time":"2026-01-02T03:04:05Z"}`,
	`{"attributes":{},"name":"n","time":"yesterday"}`,
	`{"attributes":{},"name":"n","time":"0001-01-01T00:00:00Z","body":null,"other":[{}]}`,
	`{"attributes":{},"name":"n","time":"2026-01-02T03:04:05Z","trace_id":"t","span_id":"s","severity":"INFO","body":"b"}`,
	`{"attributes":{"user.roles":["a",2],"batchaudit.retention.through_sequence":"12"},"name":"n","time":"2026-01-02T03:04:05Z"}`,
}

// Canonical documents take the selective path (otherwise the fuzz test
// would pass by always declining), and damaged ones fail as ParseCanonical
// fails.
func TestParseSelected(t *testing.T) {
	for _, e := range richEvents() {
		doc, err := e.AppendCanonical(nil)
		require.NoError(t, err)
		want, err := ParseCanonical(doc)
		require.NoError(t, err)
		var got Event
		require.True(t, parseSelected(doc, testSelection, &got), "%s", doc)
		sameSelected(t, want, got, testSelection, doc)
		// Only the selection is built.
		if e.RecordHash != "" {
			assert.Empty(t, got.RecordHash)
		}
	}
	for _, s := range selectedSeeds {
		want, werr := ParseCanonical([]byte(s))
		var got Event
		gerr := ParseSelected([]byte(s), testSelection, &got)
		if werr != nil {
			require.Error(t, gerr, s)
			assert.Equal(t, werr.Error(), gerr.Error(), s)
			continue
		}
		require.NoError(t, gerr, s)
		sameSelected(t, want, got, testSelection, []byte(s))
	}
	// A run total selects its group.
	assert.Len(t, Select(AttrRecordsWrite).keys, len(counterKeys))
}

func BenchmarkParseSelected(b *testing.B) {
	docs := richDocs(b)
	b.ResetTimer()
	var e Event
	for i := 0; i < b.N; i++ {
		if err := ParseSelected(docs[i%len(docs)], testSelection, &e); err != nil {
			b.Fatal(err)
		}
	}
}
