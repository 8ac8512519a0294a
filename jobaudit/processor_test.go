package jobaudit

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
)

// flakyExporter fails its first calls (fault injection for the test).
type flakyExporter struct {
	memExporter
	failures int
}

func (f *flakyExporter) Export(ctx context.Context, recs []sdklog.Record) error {
	if f.failures > 0 {
		f.failures--
		return errors.New("collector unavailable")
	}
	return f.memExporter.Export(ctx, recs)
}

func TestProcessorNeverDrops(t *testing.T) {
	exp := &flakyExporter{failures: 3}
	p := NewProcessor(exp, 10, time.Hour)
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(p))
	lg := lp.Logger("t")
	ctx := context.Background()
	for i := 0; i < 95; i++ {
		var r log.Record
		r.SetEventName("e")
		lg.Emit(ctx, r)
	}
	assert.Less(t, len(exp.recs), 95)
	require.NoError(t, lp.Shutdown(ctx))
	assert.Len(t, exp.recs, 95, "every record is delivered once the collector is back")
	assert.Equal(t, 0, exp.failures)
}

func TestProcessorReportsUndelivered(t *testing.T) {
	exp := &flakyExporter{failures: 1000}
	p := NewProcessor(exp, 10, time.Hour)
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(p))
	var r log.Record
	lp.Logger("t").Emit(context.Background(), r)
	assert.Error(t, lp.Shutdown(context.Background()))
}
