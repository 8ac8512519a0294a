package auditexporter

import (
	"context"
	"errors"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/exporter/auditexporter/internal/metadatatest"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/sqlitestore"
	"github.com/batchaudit/batchaudit/store/storetest"
)

// logsOf puts events into one OTLP logs payload, the way the pipeline
// delivers them.
func logsOf(events ...auditevent.Event) plog.Logs {
	ld := plog.NewLogs()
	lrs := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords()
	for i := range events {
		events[i].ToLogRecord(lrs.AppendEmpty())
	}
	return ld
}

type harness struct {
	t    *testing.T
	tt   *componenttest.Telemetry
	cfg  *Config
	logs *observer.ObservedLogs
	exp  exporter.Logs
}

// newHarness starts an exporter on a SQLite file without queue and retries,
// so ConsumeLogs returns what push returns.
func newHarness(t *testing.T, path string, open storeOpener) *harness {
	cfg := createDefaultConfig().(*Config)
	cfg.SQLite.Path = path
	cfg.QueueConfig = configoptional.None[exporterhelper.QueueBatchConfig]()
	cfg.RetryConfig.Enabled = false
	return newHarnessOpen(t, cfg, open)
}

// newHarnessWith starts an exporter with cfg on its SQLite store.
func newHarnessWith(t *testing.T, cfg *Config) *harness { return newHarnessOpen(t, cfg, nil) }

func newHarnessOpen(t *testing.T, cfg *Config, open storeOpener) *harness {
	require.NoError(t, cfg.Validate())
	h := &harness{t: t, tt: componenttest.NewTelemetry(), cfg: cfg}
	t.Cleanup(func() { require.NoError(t, h.tt.Shutdown(context.Background())) })
	set := metadatatest.NewSettings(h.tt)
	core, logs := observer.New(zapcore.InfoLevel)
	set.Logger = zap.New(core)
	h.logs = logs
	if open == nil {
		open = openStore
	}
	e, err := newExporter(cfg, set, open)
	require.NoError(t, err)
	h.exp, err = exporterhelper.NewLogs(context.Background(), set, cfg, e.push,
		exporterhelper.WithStart(e.start), exporterhelper.WithShutdown(e.shutdown),
		exporterhelper.WithRetry(cfg.RetryConfig), exporterhelper.WithQueue(cfg.QueueConfig))
	require.NoError(t, err)
	require.NoError(t, h.exp.Start(context.Background(), componenttest.NewNopHost()))
	return h
}

func (h *harness) send(events ...auditevent.Event) error {
	return h.exp.ConsumeLogs(context.Background(), logsOf(events...))
}

func (h *harness) stop() { require.NoError(h.t, h.exp.Shutdown(context.Background())) }

func (h *harness) assertOutcomes(want map[string]int64) {
	h.t.Helper()
	var dps []metricdata.DataPoint[int64]
	for o, n := range want {
		dps = append(dps, metricdata.DataPoint[int64]{Attributes: attribute.NewSet(attribute.String("outcome", o)), Value: n})
	}
	metadatatest.AssertEqualExporterAuditEvents(h.t, h.tt, dps, metricdatatest.IgnoreTimestamp(), metricdatatest.IgnoreExemplars())
}

func openForRead(t *testing.T, path string) *sqlitestore.Store {
	s, err := sqlitestore.Open(context.Background(), path)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestRoundTripEveryEventType(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	h := newHarness(t, path, nil)
	events := storetest.RunEvents("b1", storetest.T0)
	events = append(events[:len(events)-1], storetest.ProgressEvent("b1", storetest.T0.Add(15500*time.Millisecond)), events[len(events)-1])
	events = append(events, storetest.MetadataEvents(storetest.T0)...)
	events = append(events, storetest.RetentionEvent(storetest.T0.Add(20*time.Second)))
	names := map[string]bool{}
	for _, e := range events {
		names[e.Name] = true
	}
	require.Len(t, names, len(auditevent.Names()), "the fixture covers every event type")
	require.NoError(t, h.send(events...))
	h.stop()
	h.assertOutcomes(map[string]int64{"stored": 21})

	s := openForRead(t, path)
	got, err := s.Events(context.Background(), store.EventQuery{})
	require.NoError(t, err)
	require.Len(t, got, len(events))
	sort.Slice(got, func(i, j int) bool { return got[i].Sequence < got[j].Sequence })
	for i, se := range got {
		assert.Equal(t, events[i], se.Event, events[i].Name)
		h, err := se.Event.Hash()
		require.NoError(t, err)
		assert.Equal(t, h, se.Hash)
		assert.Equal(t, "default", se.Stream)
		assert.Equal(t, int64(i+1), se.Sequence)
	}
	runs, err := s.Runs(context.Background(), store.RunQuery{})
	require.NoError(t, err)
	require.Len(t, runs, 1)
	want := storetest.ExpectedRun("b1", storetest.T0)
	want.Events++ // the progress event
	assert.Equal(t, want, runs[0])
	// Spelled out, because this is what operators read.
	assert.Equal(t, "success", runs[0].Status)
	assert.Equal(t, 16.0, runs[0].Duration)
	assert.Equal(t, []int64{3, 2, 1, 1}, []int64{runs[0].Read, runs[0].Written, runs[0].Skipped, runs[0].Errored})
	assert.Equal(t, []int64{1, 1, 1, 0}, []int64{runs[0].Inserted, runs[0].Updated, runs[0].Deleted, runs[0].Unchanged})
	assert.Equal(t, []string{"file://in/orders.csv"}, runs[0].Sources)
	assert.Equal(t, []string{"postgres://db:5432/dw.orders"}, runs[0].Targets)
}

func TestIdempotentResend(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	h := newHarness(t, path, nil)
	events := storetest.RunEvents("b1", storetest.T0)
	require.NoError(t, h.send(events...))
	require.NoError(t, h.send(events...))
	h.stop()
	h.assertOutcomes(map[string]int64{"stored": 17, "duplicate": 17})
	s := openForRead(t, path)
	got, err := s.Events(context.Background(), store.EventQuery{})
	require.NoError(t, err)
	assert.Len(t, got, 17)
	last, err := s.LastSequence(context.Background(), "default")
	require.NoError(t, err)
	assert.Equal(t, int64(17), last)
	runs, err := s.Runs(context.Background(), store.RunQuery{})
	require.NoError(t, err)
	assert.Equal(t, storetest.ExpectedRun("b1", storetest.T0), runs[0], "counted once")
}

func TestConflictIsAnIntegrityAlarm(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	h := newHarness(t, path, nil)
	events := storetest.RunEvents("b1", storetest.T0)
	require.NoError(t, h.send(events...))
	tampered := events[3]
	tampered.RecordHash = "4bc719bd2d0d7b8c6ac3a7f1ba5d4d8e3f1c0b0a9e8d7c6b5a4938271605f3f7"
	require.NoError(t, h.send(tampered), "a conflict is kept, not an error")
	h.stop()
	h.assertOutcomes(map[string]int64{"stored": 17, "conflict": 1})
	metadatatest.AssertEqualExporterAuditIntegrityAlarms(t, h.tt, []metricdata.DataPoint[int64]{{Value: 1}},
		metricdatatest.IgnoreTimestamp(), metricdatatest.IgnoreExemplars())

	storedHash, _ := events[3].Hash()
	newHash, _ := tampered.Hash()
	alarms := h.logs.FilterMessageSnippet("Integrity alarm").All()
	require.Len(t, alarms, 1)
	assert.Equal(t, zapcore.ErrorLevel, alarms[0].Level)
	fields := alarms[0].ContextMap()
	assert.Equal(t, events[3].ID, fields["event_id"])
	assert.Equal(t, storedHash, fields["stored_hash"])
	assert.Equal(t, newHash, fields["received_hash"])
	assert.Equal(t, int64(18), fields["sequence"])

	s := openForRead(t, path)
	dl, err := s.DeadLetters(context.Background(), time.Time{}, time.Time{}, 0)
	require.NoError(t, err)
	require.Len(t, dl, 1)
	assert.Equal(t, tampered.ID, dl[0].EventID)
	assert.Equal(t, int64(18), dl[0].Sequence)
	assert.Contains(t, dl[0].Reason, storedHash)
	assert.Contains(t, dl[0].Reason, newHash)
	got, err := store.RecordHistory(context.Background(), s, "A-1")
	require.NoError(t, err)
	assert.Equal(t, events[3], got[2].Event, "the stored event is untouched")
}

func TestInvalidEventIsDeadLettered(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	h := newHarness(t, path, nil)
	events := storetest.RunEvents("b1", storetest.T0)[:3]
	bad := events[1]
	bad.RecordID = ""
	bad.ID = auditevent.DeterministicID("bad")
	unknown := auditevent.Event{ID: "u1", Name: "batchaudit.record.teleport", Time: storetest.T0}
	require.NoError(t, h.send(events[0], bad, unknown, events[1], events[2]))
	h.stop()
	h.assertOutcomes(map[string]int64{"stored": 3, "dead_lettered": 2})

	s := openForRead(t, path)
	dl, err := s.DeadLetters(context.Background(), time.Time{}, time.Time{}, 0)
	require.NoError(t, err)
	require.Len(t, dl, 2)
	byID := map[string]store.DeadLetter{dl[0].EventID: dl[0], dl[1].EventID: dl[1]}
	assert.Equal(t, int64(2), byID[bad.ID].Sequence, "a dead letter holds its place")
	assert.Equal(t, "invalid batchaudit.record.read: batchaudit.record.id: is required for batchaudit.record.read", byID[bad.ID].Reason)
	assert.Equal(t, int64(3), byID["u1"].Sequence)
	assert.Contains(t, byID["u1"].Reason, "event_name: is not a known event name")
	back, err := auditevent.ParseCanonical([]byte(byID[bad.ID].Document))
	require.NoError(t, err)
	assert.Equal(t, bad, back, "the dead letter keeps the content")
	assert.Len(t, h.logs.FilterMessage("Audit event kept as a dead letter").All(), 2)
	got, err := s.Events(context.Background(), store.EventQuery{})
	require.NoError(t, err)
	assert.Equal(t, []int64{1, 4, 5}, []int64{got[0].Sequence, got[1].Sequence, got[2].Sequence})
}

func TestUnhashableEventIsDeadLettered(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	h := newHarness(t, path, nil)
	ld := logsOf(storetest.RunEvents("b1", storetest.T0)[1])
	// 2^60 has no exact JSON number; canonical JSON refuses it.
	m := ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0).Attributes().PutEmptyMap(auditevent.AttrRecordData)
	m.PutInt("big", 1<<60)
	require.NoError(t, h.exp.ConsumeLogs(context.Background(), ld))
	h.stop()
	h.assertOutcomes(map[string]int64{"dead_lettered": 1})
	dl, err := openForRead(t, path).DeadLetters(context.Background(), time.Time{}, time.Time{}, 0)
	require.NoError(t, err)
	require.Len(t, dl, 1)
	assert.Contains(t, dl[0].Reason, "cannot be")
	assert.Contains(t, dl[0].Document, "1152921504606846976")
}

func TestSequencesGaplessAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	events := storetest.RunEvents("b1", storetest.T0)
	bad := events[5]
	bad.Transform.Name = ""

	h := newHarness(t, path, nil)
	require.NoError(t, h.send(events[:5]...))
	h.stop()

	h = newHarness(t, path, nil)
	assert.Len(t, h.logs.FilterField(zap.Int64("last_sequence", 5)).All(), 1, "the restart picks up the stream")
	require.NoError(t, h.send(append(events[3:5], bad)...)) // redelivery after a crash plus a dead letter
	require.NoError(t, h.send(events[6:]...))
	h.stop()

	s := openForRead(t, path)
	got, err := s.Events(context.Background(), store.EventQuery{})
	require.NoError(t, err)
	dl, err := s.DeadLetters(context.Background(), time.Time{}, time.Time{}, 0)
	require.NoError(t, err)
	var seqs []int
	for _, e := range got {
		seqs = append(seqs, int(e.Sequence))
	}
	for _, d := range dl {
		seqs = append(seqs, int(d.Sequence))
	}
	sort.Ints(seqs)
	require.Len(t, seqs, 17)
	for i, n := range seqs {
		assert.Equal(t, i+1, n)
	}
	assert.Equal(t, int64(6), dl[0].Sequence)
	last, err := s.LastSequence(context.Background(), "default")
	require.NoError(t, err)
	assert.Equal(t, int64(17), last)
}

// fakeStore injects backend failures (unit tests only).
type fakeStore struct {
	store.Store
	write func(events []store.StoredEvent) ([]store.Result, error)
	calls int
}

func (f *fakeStore) Write(_ context.Context, _ string, events []store.StoredEvent) ([]store.Result, error) {
	f.calls++
	return f.write(events)
}
func (f *fakeStore) LastSequence(context.Context, string) (int64, error) { return 0, nil }
func (f *fakeStore) Close() error                                        { return nil }

func fakeOpener(f *fakeStore) storeOpener {
	return func(context.Context, *Config, *zap.Logger) (store.Store, error) { return f, nil }
}

func allOutcome(events []store.StoredEvent, o store.Outcome) []store.Result {
	res := make([]store.Result, len(events))
	for i, e := range events {
		res[i] = store.Result{EventID: e.ID, Outcome: o, Sequence: int64(i + 1)}
	}
	return res
}

func TestRetryOutcomeRedeliversTheBatch(t *testing.T) {
	f := &fakeStore{}
	f.write = func(events []store.StoredEvent) ([]store.Result, error) {
		if f.calls == 1 {
			res := allOutcome(events, store.Stored)
			res[1] = store.Result{EventID: events[1].ID, Outcome: store.Retry, Reason: "es: 429 too many requests"}
			return res, nil
		}
		return allOutcome(events, store.Duplicate), nil
	}
	h := newHarness(t, filepath.Join(t.TempDir(), "unused.db"), fakeOpener(f))
	events := storetest.RunEvents("b1", storetest.T0)[:3]
	err := h.send(events...)
	require.Error(t, err)
	assert.False(t, consumererror.IsPermanent(err), "a Retry outcome must be retried")
	assert.Contains(t, err.Error(), "1 of 3 audit events must be retried (first: event "+events[1].ID+": es: 429 too many requests)")
	require.NoError(t, h.send(events...))
	h.stop()
	h.assertOutcomes(map[string]int64{"stored": 2, "retry": 1, "duplicate": 3})
}

func TestBackendErrors(t *testing.T) {
	events := storetest.RunEvents("b1", storetest.T0)[:2]
	for name, tc := range map[string]struct {
		write     func([]store.StoredEvent) ([]store.Result, error)
		permanent bool
		msg       string
	}{
		"transient": {func([]store.StoredEvent) ([]store.Result, error) { return nil, errors.New("database is locked") },
			false, "audit store write of 2 events failed, retrying: database is locked"},
		"permanent": {func([]store.StoredEvent) ([]store.Result, error) {
			return nil, consumererror.NewPermanent(errors.New("403 forbidden"))
		}, true, "audit store refused 2 events: Permanent error: 403 forbidden"},
		"short": {func(ev []store.StoredEvent) ([]store.Result, error) { return allOutcome(ev, store.Stored)[:1], nil },
			true, "audit store returned 1 results for 2 events"},
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, filepath.Join(t.TempDir(), "unused.db"), fakeOpener(&fakeStore{write: tc.write}))
			err := h.send(events...)
			require.Error(t, err)
			assert.Equal(t, tc.permanent, consumererror.IsPermanent(err))
			assert.Contains(t, err.Error(), tc.msg)
			h.stop()
			_, err = h.tt.GetMetric("otelcol_exporter_audit_write_duration")
			require.NoError(t, err, "failed writes are timed too")
		})
	}
}

func TestLifecycleErrors(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	dir := t.TempDir()
	cfg.SQLite.Path = filepath.Join(dir, "audit.db", "x", "audit.db")
	require.NoError(t, openForRead(t, filepath.Join(dir, "audit.db")).Close())
	e, err := newExporter(cfg, metadatatest.NewSettings(componenttest.NewTelemetry()), openStore)
	require.NoError(t, err)
	err = e.start(context.Background(), componenttest.NewNopHost())
	require.ErrorContains(t, err, "audit exporter: open the sqlite backend: sqlitestore: create directory")
	assert.ErrorIs(t, e.push(context.Background(), logsOf(storetest.RunEvents("b", storetest.T0)[0])), errNotStarted)
	assert.NoError(t, e.push(context.Background(), plog.NewLogs()), "nothing to write")
	require.NoError(t, e.shutdown(context.Background()))
	require.NoError(t, e.shutdown(context.Background()), "twice")
}

func TestResourceAttributesFillEvents(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	h := newHarness(t, path, nil)
	e := storetest.RunEvents("b1", storetest.T0)[0]
	e.JobName, e.BatchID = "", ""
	ld := logsOf(e)
	res := ld.ResourceLogs().At(0).Resource().Attributes()
	res.PutStr(auditevent.AttrJobName, "from-resource")
	res.PutStr(auditevent.AttrBatchID, "b-res")
	require.NoError(t, h.exp.ConsumeLogs(context.Background(), ld))
	h.stop()
	runs, err := openForRead(t, path).Runs(context.Background(), store.RunQuery{})
	require.NoError(t, err)
	require.Len(t, runs, 1)
	assert.Equal(t, "b-res", runs[0].BatchID)
	assert.Equal(t, "from-resource", runs[0].JobName)
}
