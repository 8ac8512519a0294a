package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/internal/cpuclock"
)

// sampleLogs builds n record.write events the way an SDK-instrumented job
// sends them (ids left to the receiver).
func sampleLogs(n int) plog.Logs {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "orders-loader")
	rl.Resource().Attributes().PutStr(auditevent.AttrJobName, "orders_loader")
	rl.Resource().Attributes().PutStr(auditevent.AttrBatchID, "01934f5e-7c2a-7b3e-9f41-2d6b8c0a1e55")
	sl := rl.ScopeLogs().AppendEmpty()
	for i := range n {
		lr := sl.LogRecords().AppendEmpty()
		lr.SetEventName(auditevent.RecordWrite)
		lr.SetTimestamp(pcommon.NewTimestampFromTime(tStart.Add(time.Duration(i) * time.Millisecond)))
		a := lr.Attributes()
		a.PutStr(auditevent.AttrRecordID, fmt.Sprintf("ORD-%06d", i))
		a.PutStr(auditevent.AttrTargetNamespace, "postgres://db.internal:5432")
		a.PutStr(auditevent.AttrTargetName, "analytics.orders")
		a.PutStr(auditevent.AttrRecordHash, "ec4f3090ddca38d98c1ed38d9bf37b2a9a9376bda32cf753aa60783854f80bbb")
		a.PutStr(auditevent.AttrChangeType, auditevent.ChangeUpdate)
		a.PutEmptySlice(auditevent.AttrChangedFields).AppendEmpty().SetStr("amount")
		nv := a.PutEmptyMap(auditevent.AttrNewValue)
		nv.PutDouble("amount", 12.5)
		nv.PutStr("status", "paid")
	}
	return ld
}

// jsonPayload is a realistic hand-written-logger batch of n record writes.
func jsonPayload(n int, withIDs bool) []byte {
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i := range n {
		if i > 0 {
			buf.WriteByte(',')
		}
		id := ""
		if withIDs {
			id = fmt.Sprintf(`"event_id":"0f5c6d1e-1b7a-4b8e-9a51-%012d",`, i)
		}
		fmt.Fprintf(&buf, `{%s"event_type":"record_write","timestamp":"2026-11-01T02:00:01.%06dZ","batch_id":"b-20261101-orders",`+
			`"job_name":"orders_loader","source":"postgres://db.internal:5432/staging.orders","target":"postgres://db.internal:5432/analytics.orders",`+
			`"record_id":"ORD-%06d","record_hash":"ec4f3090ddca38d98c1ed38d9bf37b2a9a9376bda32cf753aa60783854f80bbb","change_type":"update",`+
			`"old_value":{"amount":10.5,"status":"open"},"new_value":{"amount":12.5,"status":"paid"},"actor":"svc-etl","metadata":{"env":"prod"}}`, id, i, i)
	}
	buf.WriteByte(']')
	return buf.Bytes()
}

func olPayload(b *testing.B, n int) []byte {
	var arr []json.RawMessage
	for i := range n {
		arr = append(arr, compactB(b, readTestdata(b, "openlineage", []string{"run_start.json", "run_complete.json"}[i%2])))
	}
	body, _ := json.Marshal(arr)
	return body
}

func compactB(b *testing.B, raw []byte) []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// cpuStart is the process CPU time when the benchmark function began; the
// setup before b.Loop is small next to the timed loop.
var cpuStart time.Duration

// reportPerEvent reports wall-clock and per-CPU-second rates; the latter
// (GC on the other core included) is the one-core figure.
func reportPerEvent(b *testing.B, n int) {
	events := float64(b.N * n)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/events, "ns/event")
	b.ReportMetric(events/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(events/(cpuclock.Process()-cpuStart).Seconds(), "events/cpu-s")
}

func benchJSON(b *testing.B, withIDs bool) {
	const n = 500
	body := jsonPayload(n, withIDs)
	benchBody(b, n, body, func() error { return accepted(JSONEvents(body, Options{MaxEvents: 10000}))(n) })
}

// accepted checks that a parse accepted all n events.
func accepted(r *Result, err error) func(n int) error {
	return func(n int) error {
		if err == nil && r.Accepted != n {
			err = fmt.Errorf("accepted %d of %d: %v", r.Accepted, n, r.Rejected)
		}
		return err
	}
}

func BenchmarkJSONEventsWithIDs(b *testing.B)    { benchJSON(b, true) }
func BenchmarkJSONEventsDerivedIDs(b *testing.B) { benchJSON(b, false) }

func BenchmarkOpenLineage(b *testing.B) {
	const n = 200
	body := olPayload(b, n)
	benchBody(b, n, body, func() error { return accepted(OpenLineage(body, Options{MaxEvents: 10000}))(n) })
}

// benchBody runs one request body of n events through do per op.
func benchBody(b *testing.B, n int, body []byte, do func() error) {
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	cpuStart = cpuclock.Process()
	for b.Loop() {
		if err := do(); err != nil {
			b.Fatal(err)
		}
	}
	reportPerEvent(b, n)
}

// BenchmarkOTLPLogs1000 measures the OTLP path overhead: decoding a
// 1000-record ExportLogsServiceRequest and normalizing it.
func BenchmarkOTLPLogs1000(b *testing.B) {
	const n = 1000
	body, err := plogotlp.NewExportRequestFromLogs(sampleLogs(n)).MarshalProto()
	if err != nil {
		b.Fatal(err)
	}
	benchBody(b, n, body, func() error {
		req := plogotlp.NewExportRequest()
		if err := req.UnmarshalProto(body); err != nil {
			return err
		}
		return accepted(OTLPLogs(req.Logs(), Options{MaxEvents: 10000}))(n)
	})
}

// BenchmarkOTLPDecodeOnly is the baseline the normalization adds to.
func BenchmarkOTLPDecodeOnly1000(b *testing.B) {
	const n = 1000
	body, err := plogotlp.NewExportRequestFromLogs(sampleLogs(n)).MarshalProto()
	if err != nil {
		b.Fatal(err)
	}
	benchBody(b, n, body, func() error { return plogotlp.NewExportRequest().UnmarshalProto(body) })
}

// BenchmarkOTLPJSONDecodeOnly500 is the machine's reference for JSON: the
// collector's own OTLP/JSON decoding (what the plain otlp receiver does with
// a JSON body) of 500 record writes, without any validation or normalization.
func BenchmarkOTLPJSONDecodeOnly500(b *testing.B) {
	const n = 500
	body, err := plogotlp.NewExportRequestFromLogs(sampleLogs(n)).MarshalJSON()
	if err != nil {
		b.Fatal(err)
	}
	benchBody(b, n, body, func() error { return plogotlp.NewExportRequest().UnmarshalJSON(body) })
}
