package jobaudit

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/otel/attribute"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/canonical"
)

// memExporter keeps exported records in memory (test double for the OTLP exporter).
type memExporter struct {
	mu   sync.Mutex
	recs []sdklog.Record
}

func (m *memExporter) Export(_ context.Context, recs []sdklog.Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range recs {
		m.recs = append(m.recs, r.Clone())
	}
	return nil
}
func (m *memExporter) Shutdown(context.Context) error   { return nil }
func (m *memExporter) ForceFlush(context.Context) error { return nil }

func raw(v attribute.Value) any {
	switch v.Type() {
	case attribute.MAP:
		m := map[string]any{}
		for _, kv := range v.AsMap() {
			m[string(kv.Key)] = raw(kv.Value)
		}
		return m
	case attribute.SLICE:
		var out []any
		for _, e := range v.AsSlice() {
			out = append(out, raw(e))
		}
		return out
	case attribute.STRINGSLICE:
		var out []any
		for _, e := range v.AsStringSlice() {
			out = append(out, e)
		}
		return out
	}
	return v.AsInterface()
}

// toEvents converts SDK records the way the collector sees them.
func toEvents(t *testing.T, recs []sdklog.Record) []auditevent.Event {
	var out []auditevent.Event
	for _, r := range recs {
		lr := plog.NewLogRecord()
		lr.SetEventName(r.EventName())
		lr.SetTimestamp(pcommon.NewTimestampFromTime(r.Timestamp()))
		tid, sid := r.TraceID(), r.SpanID()
		lr.SetTraceID(pcommon.TraceID(tid))
		lr.SetSpanID(pcommon.SpanID(sid))
		m := map[string]any{}
		r.WalkAttributes(func(kv attribute.KeyValue) bool { m[string(kv.Key)] = raw(kv.Value); return true })
		require.NoError(t, lr.Attributes().FromRaw(m))
		out = append(out, auditevent.FromLogRecord(lr, pcommon.NewResource()))
	}
	return out
}

func setup() (*Auditor, *memExporter, *tracetest.SpanRecorder) {
	exp := &memExporter{}
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewSimpleProcessor(exp)))
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	return New(lp, tp), exp, sr
}

func TestRunEmitsValidEvents(t *testing.T) {
	a, exp, sr := setup()
	ctx := context.Background()
	src := Dataset{Namespace: "file://in", Name: "orders.csv"}
	dst := Dataset{Namespace: "file://out", Name: "orders_clean.csv"}
	ctx, run := a.StartRun(ctx, "orders", WithActor("svc-etl", "ETL", "scheduler"), WithNamespace("finance"),
		WithCompliance([]string{"SOX"}, []string{"financial"}))
	in := map[string]any{"id": "A-1", "amount": "12.50"}
	out := map[string]any{"id": "A-1", "amount": 12.5}
	run.Read(ctx, src, "A-1", in)
	run.Transform(ctx, "A-1", Step{Name: "parse_amount", Sequence: 1, Type: "DIRECT", Subtype: "TRANSFORMATION"}, in, out)
	run.Write(ctx, dst, "A-1", out)
	run.Skip(ctx, "A-2", "duplicate")
	run.Error(ctx, "A-3", errors.New("bad date"))
	run.Validation(ctx, "amount_positive", true, "amount", ">0", 12.5)
	run.Validation(ctx, "currency_known", false, "currency", "EUR|USD", "XXX")
	run.Checkpoint(ctx, "cp1", "orders.csv:3", 3)
	run.Delete(ctx, dst, "A-9")
	run.Write(ctx, dst, "A-4", out, WithoutData())
	run.End(ctx, nil)
	run.End(ctx, errors.New("ignored: already ended"))

	evs := toEvents(t, exp.recs)
	var names []string
	for _, e := range evs {
		names = append(names, e.Name)
		require.NoError(t, e.Validate(), e.Name)
		assert.Equal(t, run.BatchID(), e.BatchID)
		assert.Equal(t, "orders", e.JobName)
		assert.Equal(t, "svc-etl", e.Actor.ID)
		assert.Equal(t, []string{"SOX"}, e.Frameworks)
		assert.NotEmpty(t, e.TraceID, "events correlate with the run span")
	}
	assert.Equal(t, []string{auditevent.BatchStart, auditevent.RecordRead, auditevent.RecordTransform,
		auditevent.RecordWrite, auditevent.RecordSkip, auditevent.RecordError, auditevent.ValidationPass,
		auditevent.ValidationFail, auditevent.Checkpoint, auditevent.RecordDelete, auditevent.RecordWrite,
		auditevent.BatchEnd}, names)

	inHash, _ := canonical.Hash(in)
	outHash, _ := canonical.Hash(out)
	assert.Equal(t, inHash, evs[1].RecordHash)
	assert.Equal(t, inHash, evs[2].InputHash)
	assert.Equal(t, outHash, evs[2].RecordHash)
	assert.Equal(t, outHash, evs[3].RecordHash)
	// The collector can recompute the hash from the data it received.
	got, err := canonical.Hash(evs[3].RecordData)
	require.NoError(t, err)
	assert.Equal(t, outHash, got)
	assert.Nil(t, evs[10].RecordData, "WithoutData sends only the hash")
	assert.Equal(t, outHash, evs[10].RecordHash)

	end := evs[len(evs)-1]
	assert.Equal(t, auditevent.ResultSuccess, end.BatchResult)
	assert.Equal(t, auditevent.Counters{Read: 1, Written: 2, Skipped: 1, Errored: 1}, *end.Counters)

	spans := sr.Ended()
	require.Len(t, spans, 1)
	assert.Equal(t, "batch orders", spans[0].Name())
	assert.Equal(t, spans[0].SpanContext().TraceID().String(), end.TraceID)
}

func TestEndResults(t *testing.T) {
	for err, want := range map[error]string{
		errors.New("boom"):       auditevent.ResultFailure,
		context.Canceled:         auditevent.ResultCancellation,
		context.DeadlineExceeded: auditevent.ResultTimeout,
	} {
		a, exp, _ := setup()
		ctx, run := a.StartRun(context.Background(), "j")
		run.End(ctx, err)
		evs := toEvents(t, exp.recs)
		end := evs[len(evs)-1]
		assert.Equal(t, want, end.BatchResult)
		assert.Equal(t, err.Error(), end.ErrorMessage)
		require.NoError(t, end.Validate())
	}
}

func TestUnhashableRecordBecomesError(t *testing.T) {
	a, exp, _ := setup()
	ctx, run := a.StartRun(context.Background(), "j")
	run.Write(ctx, Dataset{Name: "t"}, "big", map[string]any{"n": int64(1) << 60})
	evs := toEvents(t, exp.recs)
	last := evs[len(evs)-1]
	assert.Equal(t, auditevent.RecordError, last.Name)
	assert.Contains(t, last.ErrorMessage, "cannot be hashed")
}

// BenchmarkWrite measures the job's hot path: building, hashing and handing
// one record write event to the SDK (which batches it; export not included).
func BenchmarkWrite(b *testing.B) {
	exp := &memExporter{}
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(sdklog.NewBatchProcessor(discard{exp})))
	defer lp.Shutdown(context.Background())
	a := New(lp, sdktrace.NewTracerProvider())
	ctx, run := a.StartRun(context.Background(), "bench")
	dst := Dataset{Namespace: "file://out", Name: "orders.csv"}
	rec := map[string]any{"id": "A-1", "customer": "ACME", "amount": 12.5, "currency": "EUR", "qty": 3}
	b.ReportAllocs()
	for b.Loop() {
		run.Write(ctx, dst, "A-1", rec)
	}
}

type discard struct{ *memExporter }

func (discard) Export(context.Context, []sdklog.Record) error { return nil }

func TestRunContext(t *testing.T) {
	a, exp, _ := setup()
	params := map[string]any{"min_amount": 50, "currency": "EUR"}
	ctx, run := a.StartRun(context.Background(), "orders", WithVersion("3f2c1ab"), WithConfig(params),
		WithRunType(auditevent.RunBackfill), WithLogicalDate("2026-10-31"))
	run.End(ctx, nil)
	evs := toEvents(t, exp.recs)
	start := evs[0]
	require.NoError(t, start.Validate())
	assert.Equal(t, "3f2c1ab", start.JobVersion)
	assert.Equal(t, auditevent.RunBackfill, start.RunType)
	assert.Equal(t, "2026-10-31", start.LogicalDate)
	assert.Equal(t, map[string]any{"min_amount": int64(50), "currency": "EUR"}, start.JobConfig)
	h, err := canonical.Hash(start.JobConfig)
	require.NoError(t, err)
	assert.Equal(t, h, start.JobConfigHash, "the hash the collector computes from the configuration")
	assert.Empty(t, evs[1].JobVersion, "run context is on the batch start only")

	// A secret configuration: only its hash.
	a, exp, _ = setup()
	ctx, run = a.StartRun(context.Background(), "orders", WithConfigHash(h))
	run.End(ctx, nil)
	evs = toEvents(t, exp.recs)
	assert.Equal(t, h, evs[0].JobConfigHash)
	assert.Nil(t, evs[0].JobConfig)
}
