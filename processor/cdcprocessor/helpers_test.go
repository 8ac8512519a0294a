package cdcprocessor

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/processor/cdcprocessor/internal/metadata"
)

// fakeStorage is a storage extension handing out one given client (unit
// tests only; the restart tests use the real file storage extension).
type fakeStorage struct {
	component.StartFunc
	component.ShutdownFunc
	client storage.Client
}

func (f *fakeStorage) GetClient(context.Context, component.Kind, component.ID, string) (storage.Client, error) {
	return f.client, nil
}

type host struct {
	component.Host
	ext map[component.ID]component.Component
}

func (h host) GetExtensions() map[component.ID]component.Component { return h.ext }

var storageID = component.MustNewIDWithName("file_storage", "cdc")

func hostWith(ext extension.Extension) component.Host {
	return host{Host: componenttest.NewNopHost(), ext: map[component.ID]component.Component{storageID: ext}}
}

// proc is the processor as the collector runs it (processorhelper's
// wrapper: Start, ConsumeLogs, Shutdown) with its insides for inspection.
type proc struct {
	processor.Logs
	*cdcProcessor
}

func build(tb testing.TB, set processor.Settings, cfg *Config, next consumer.Logs) *proc {
	tb.Helper()
	pl, p, err := newLogs(context.Background(), set, cfg, next)
	require.NoError(tb, err)
	return &proc{Logs: pl, cdcProcessor: p}
}

type harness struct {
	t    *testing.T
	p    *proc
	sink *consumertest.LogsSink
}

// newHarness starts a processor on cfg with state in client (a memory
// client when nil).
func newHarness(t *testing.T, cfg *Config, ext extension.Extension) *harness {
	t.Helper()
	sink := &consumertest.LogsSink{}
	set := processortest.NewNopSettings(metadata.Type)
	cfg.Storage = &storageID
	p := build(t, set, cfg, sink)
	require.NoError(t, p.Start(context.Background(), hostWith(ext)))
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	return &harness{t: t, p: p, sink: sink}
}

func memExt(c storage.Client) extension.Extension { return &fakeStorage{client: c} }

// feed sends events as one incoming batch and returns what was forwarded.
func (h *harness) feed(evs ...auditevent.Event) []auditevent.Event {
	h.t.Helper()
	out, err := h.try(evs...)
	require.NoError(h.t, err)
	return out
}

func (h *harness) try(evs ...auditevent.Event) ([]auditevent.Event, error) {
	return h.tryCtx(context.Background(), evs...)
}

// tryCtx sends events in ctx (e.g. a journal delivery's).
func (h *harness) tryCtx(ctx context.Context, evs ...auditevent.Event) ([]auditevent.Event, error) {
	h.sink.Reset()
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "ordersjob")
	sl := rl.ScopeLogs().AppendEmpty()
	for i := range evs {
		evs[i].ToLogRecord(sl.LogRecords().AppendEmpty())
	}
	if err := h.p.ConsumeLogs(ctx, ld); err != nil {
		return nil, err
	}
	var out []auditevent.Event
	for _, l := range h.sink.AllLogs() {
		for i := 0; i < l.ResourceLogs().Len(); i++ {
			rl := l.ResourceLogs().At(i)
			for j := 0; j < rl.ScopeLogs().Len(); j++ {
				lrs := rl.ScopeLogs().At(j).LogRecords()
				for k := 0; k < lrs.Len(); k++ {
					out = append(out, auditevent.FromLogRecord(lrs.At(k), rl.Resource()))
				}
			}
		}
	}
	return out, nil
}

var t0 = time.Date(2026, 11, 2, 3, 0, 0, 0, time.UTC)

func write(id, batch, recID string, data map[string]any) auditevent.Event {
	return auditevent.Event{ID: id, Name: auditevent.RecordWrite, Time: t0, BatchID: batch, JobName: "orders",
		Target: auditevent.Dataset{Namespace: "pg://db", Name: "sales.orders"}, RecordID: recID, RecordData: data}
}

func del(id, batch, recID string) auditevent.Event {
	return auditevent.Event{ID: id, Name: auditevent.RecordDelete, Time: t0, BatchID: batch, JobName: "orders",
		Target: auditevent.Dataset{Namespace: "pg://db", Name: "sales.orders"}, RecordID: recID, ChangeType: auditevent.ChangeDelete}
}

func end(batch, result string) auditevent.Event {
	return auditevent.Event{ID: "end-" + batch, Name: auditevent.BatchEnd, Time: t0.Add(time.Minute), BatchID: batch,
		JobName: "orders", BatchResult: result}
}

func byName(evs []auditevent.Event, name string) []auditevent.Event {
	var out []auditevent.Event
	for _, e := range evs {
		if e.Name == name {
			out = append(out, e)
		}
	}
	return out
}

func order(id string, amount float64, extra ...any) map[string]any {
	m := map[string]any{"order_id": id, "amount": amount, "customer": "Alice Example", "updated_at": "2026-11-01"}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == nil {
			delete(m, extra[i].(string))
			continue
		}
		m[extra[i].(string)] = extra[i+1]
	}
	return m
}

func defaultCfg(mod func(*Config)) *Config {
	cfg := createDefaultConfig().(*Config)
	cfg.Datasets = []DatasetConfig{{Name: "sales.*", KeyFields: []string{"order_id"}, IgnoreFields: []string{"updated_at"}}}
	if mod != nil {
		mod(cfg)
	}
	return cfg
}

var _ = pcommon.NewMap
