package ingest

import (
	"encoding/json"
	"reflect"
	"testing"

	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// FuzzOpenLineageDecoder checks the single-pass decoder against
// json.Unmarshal: whatever it accepts, encoding/json accepts and decodes to
// the same olEvent, and it knows whether json.Compact would change the item.
func FuzzOpenLineageDecoder(f *testing.F) {
	for _, name := range []string{"run_start.json", "run_complete.json", "run_fail.json", "job_event.json", "dataset_event.json"} {
		f.Add(readTestdata(f, "openlineage", name))
	}
	for _, s := range olDecoderEdgeCases {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var got olEvent
		spaced, ok := decodeOpenLineage(raw, &got)
		if !ok {
			return
		}
		var want olEvent
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatalf("decoder accepted what encoding/json rejects (%v): %q", err, raw)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decoded differently from encoding/json: %q\n got  %#v\n want %#v", raw, got, want)
		}
		if spaced != !isCompact(raw) {
			t.Fatalf("spaced = %v for %q", spaced, raw)
		}
	})
}

var olDecoderEdgeCases = []string{
	`{"run":{"runId":"x","facets":{"parent":{"root":null}}},"job":{}}`,
	`{"dataset":{"facets":{"columnLineage":{"fields":{"a":{},"b":null,"a":{"inputFields":[null,{"transformations":[]}]}}}}}}`,
	`{"inputs":[null,{"inputFacets":{"inputStatistics":{"rowCount":-3}}}],"outputs":[]}`,
	`{"outputs":[{"outputFacets":{"outputStatistics":{"rowCount":7,"size":700,"fileCount":1}}},{"outputFacets":{"outputStatistics":{"size":null}}}]}`,
	`{"run":{"runId":"r","facets":{"nominalTime":{"nominalStartTime":"2026-11-01T00:00:00Z","nominalEndTime":"x"},"errorMessage":null}}}`,
	`{"run":{"facets":{"nominalTime":null}}}`,
	`{"eventType":"START","eventType":null}`,
	`{"EventType":"START"}`,
	`{"eventtype":"START"}`,
	"{\"run\":{\"runId\":\"\\u00e9\\ud800\"}, \"job\" : null }",
	`{"x":"\q"}`,
	`{"x":"\u12"}`,
	`{"inputs":[{"inputFacets":{"inputStatistics":{"rowCount":1.5}}}]}`,
	`{"inputs":[{"inputFacets":{"inputStatistics":{"rowCount":1e3}}}]}`,
	`{"run":{"facets":{"errorMessage":{"message":"m","stackTrace":null}}}}`,
	`{"outputs":[{"facets":{"columnLineage":{"dataset":[{"transformations":[{"masking":true},null]}]}}}]}`,
	`{"run":"x"}`,
	`null`,
	`{"a":1}x`,
	"{\"eventT\u0131me\":\"x\",\"event\u0054ype\":\"START\",\"facets\":{\"\u00e9\":1}}",
	"{\"job\":{\"nameſ\":1,\"\u212aey\":2}}",
}

func TestOpenLineageDecoderMatchesEncodingJSON(t *testing.T) {
	accepted := 0
	for _, s := range olDecoderEdgeCases {
		var got, want olEvent
		spaced, ok := decodeOpenLineage([]byte(s), &got)
		err := json.Unmarshal([]byte(s), &want)
		if !ok {
			continue // json.Unmarshal decides, in eventFromOpenLineage
		}
		accepted++
		require.NoError(t, err, s)
		assert.Equal(t, want, got, s)
		assert.Equal(t, !isCompact([]byte(s)), spaced, s)
	}
	assert.Greater(t, accepted, 5, "the common cases take the fast path")
	for _, s := range []string{`{"EventType":"START"}`, `{"eventType":"START","eventType":null}`, `{"x":"\q"}`, `{"a":1}x`, `{"run":"x"}`} {
		_, ok := decodeOpenLineage([]byte(s), new(olEvent))
		assert.False(t, ok, "declined: %s", s)
	}
}

func TestStringStop(t *testing.T) {
	naive := func(b []byte, i int) int {
		for ; i < len(b); i++ {
			if c := b[i]; c == '"' || c == '\\' || c < 0x20 {
				return i
			}
		}
		return i
	}
	base := []byte("abcdefghijklmnopqrstuvwxyz0123456789é€~!#[]{}")
	for _, stop := range []byte{'"', '\\', 0x00, 0x1f, '\n'} {
		for pos := range len(base) {
			b := append([]byte(nil), base...)
			b[pos] = stop
			for start := range pos + 1 {
				require.Equal(t, naive(b, start), stringStop(b, start), "stop %q at %d from %d", stop, pos, start)
			}
		}
	}
	require.Equal(t, len(base), stringStop(base, 0))
	require.Equal(t, len(base)+1, stringStop(base, len(base)+1))
}

// FuzzOpenLineageArray checks the one-pass array path against the general
// one (delimit, then parse each item): same result, same request errors.
func FuzzOpenLineageArray(f *testing.F) {
	var arr []json.RawMessage
	for _, name := range []string{"run_start.json", "run_complete.json", "run_fail.json", "job_event.json", "dataset_event.json"} {
		arr = append(arr, readTestdata(f, "openlineage", name))
	}
	body, _ := json.Marshal(arr)
	f.Add(body, 10)
	f.Add(body, 3)
	f.Add([]byte(`[{"x":"\q"}, 1, {"EventType":"START"},{"run":{"runId":42}}] `), 0)
	f.Add([]byte(`[{},]`), 0)
	f.Add([]byte(`[]`), 1)
	f.Fuzz(func(t *testing.T, body []byte, maxEvents int) {
		opt := Options{MaxEvents: maxEvents % 20, ScopeName: "s"}
		got, gotErr := OpenLineage(body, opt)
		want, wantErr := openLineageItems(body, opt)
		if (gotErr == nil) != (wantErr == nil) || gotErr != nil && gotErr.Error() != wantErr.Error() {
			t.Fatalf("errors differ: %v vs %v", gotErr, wantErr)
		}
		if gotErr != nil {
			return
		}
		if !reflect.DeepEqual(olRecords(got.Logs), olRecords(want.Logs)) || got.Items != want.Items || got.Accepted != want.Accepted ||
			!reflect.DeepEqual(got.IDs, want.IDs) || !reflect.DeepEqual(got.Rejected, want.Rejected) {
			t.Fatalf("results differ for %q:\n%+v\n%+v", body, got, want)
		}
	})
}

// olRecords lists the records' content in comparable form (maps, not the
// map-order-dependent OTLP encoding).
func olRecords(ld plog.Logs) []any {
	var out []any
	lrs := ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords()
	for i := range lrs.Len() {
		lr := lrs.At(i)
		out = append(out, []any{lr.EventName(), lr.Timestamp(), lr.TraceID(), lr.SpanID(),
			lr.SeverityNumber(), lr.Body().AsRaw(), lr.Attributes().AsRaw()})
	}
	return out
}
