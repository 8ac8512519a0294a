package cdcprocessor

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"

	"github.com/batchaudit/batchaudit/processor/cdcprocessor/internal/metadatatest"
	"github.com/batchaudit/batchaudit/processor/cdcprocessor/internal/state"
)

func TestTelemetry(t *testing.T) {
	tt := componenttest.NewTelemetry()
	t.Cleanup(func() { require.NoError(t, tt.Shutdown(context.Background())) })
	cfg := snapshotCfg(nil)
	cfg.Datasets[0].KeyFields = nil
	cfg.NoChange = NoChangeCount
	cfg.Storage = &storageID
	sink := &consumertest.LogsSink{}
	p := build(t, metadatatest.NewSettings(tt), cfg, sink)
	require.NoError(t, p.Start(context.Background(), hostWith(memExt(state.NewMemoryClient()))))
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	h := &harness{t: t, p: p, sink: sink}

	h.feed(write("e1", "b1", "A", order("A", 1)), write("e2", "b1", "B", order("B", 1)), write("e3", "b1", "", order("C", 1)), end("b1", "success"))
	h.feed(write("e4", "b2", "A", order("A", 1)), end("b2", "success"))
	h.feed(write("e4", "b2", "A", order("A", 1)))

	ct := func(v string) attribute.Set { return attribute.NewSet(attribute.String("change_type", v)) }
	metadatatest.AssertEqualProcessorCdcRecordsClassified(t, tt, []metricdata.DataPoint[int64]{
		{Attributes: ct("insert"), Value: 2}, {Attributes: ct("no_change"), Value: 2},
	}, metricdatatest.IgnoreTimestamp())
	metadatatest.AssertEqualProcessorCdcRedelivered(t, tt, []metricdata.DataPoint[int64]{{Value: 1}}, metricdatatest.IgnoreTimestamp())
	metadatatest.AssertEqualProcessorCdcDeletesEmitted(t, tt, []metricdata.DataPoint[int64]{{Value: 1}}, metricdatatest.IgnoreTimestamp())
	metadatatest.AssertEqualProcessorCdcNoChangeSuppressed(t, tt, []metricdata.DataPoint[int64]{{Value: 2}}, metricdatatest.IgnoreTimestamp())
	metadatatest.AssertEqualProcessorCdcUnclassified(t, tt, []metricdata.DataPoint[int64]{
		{Attributes: attribute.NewSet(attribute.String("reason", "no_key")), Value: 1},
	}, metricdatatest.IgnoreTimestamp())
	metadatatest.AssertEqualProcessorCdcStateKeys(t, tt, []metricdata.DataPoint[int64]{
		{Attributes: attribute.NewSet(attribute.String("state", "live")), Value: 1},
		{Attributes: attribute.NewSet(attribute.String("state", "deleted")), Value: 1},
	}, metricdatatest.IgnoreTimestamp())
	_, err := tt.GetMetric("otelcol_processor_cdc_state_latency")
	require.NoError(t, err)

	// processorhelper's standard item counts: 4+2+1 events in; out go the
	// two inserts, the unclassified event and both batch ends, plus the
	// derived delete of B; the three no_change events are counted, not
	// exported.
	procAttrs := attribute.NewSet(attribute.String("processor", "cdc"), attribute.String("otel.signal", "logs"))
	for name, want := range map[string]int64{"otelcol_processor_incoming_items": 7, "otelcol_processor_outgoing_items": 6} {
		m, err := tt.GetMetric(name)
		require.NoError(t, err, name)
		metricdatatest.AssertEqual(t, metricdata.Metrics{Name: name, Description: m.Description, Unit: m.Unit,
			Data: metricdata.Sum[int64]{Temporality: metricdata.CumulativeTemporality, IsMonotonic: true,
				DataPoints: []metricdata.DataPoint[int64]{{Attributes: procAttrs, Value: want}}}}, m, metricdatatest.IgnoreTimestamp())
	}
}
