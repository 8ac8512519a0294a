package journalreceiver

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/batchaudit/batchaudit/extension/journalextension"
	"github.com/batchaudit/batchaudit/journal"
	"github.com/batchaudit/batchaudit/receiver/journalreceiver/internal/metadata"
)

type host struct {
	component.Host
	ext map[component.ID]component.Component
}

func (h host) GetExtensions() map[component.ID]component.Component { return h.ext }

// TestDeliversTheJournal: records appended to a journal reach the
// receiver's pipeline, each delivery with its journal info, and a
// shutdown delivers everything appended before it.
func TestDeliversTheJournal(t *testing.T) {
	ctx := context.Background()
	jf := journalextension.NewFactory()
	jcfg := jf.CreateDefaultConfig()
	jcfg.(*journalextension.Config).Directory = t.TempDir()
	jcfg.(*journalextension.Config).Fsync = false
	ext, err := jf.Create(ctx, extensiontest.NewNopSettings(jf.Type()), jcfg)
	require.NoError(t, err)
	require.NoError(t, ext.Start(ctx, componenttest.NewNopHost()))
	defer func() { require.NoError(t, ext.Shutdown(ctx)) }()
	j := ext.(journal.Journal)

	sink := &infoSink{}
	cfg := &Config{Journal: component.MustNewID("journal")}
	r, err := NewFactory().CreateLogs(ctx, receivertest.NewNopSettings(metadata.Type), cfg, sink)
	require.NoError(t, err)
	require.NoError(t, r.Start(ctx, host{Host: componenttest.NewNopHost(), ext: map[component.ID]component.Component{cfg.Journal: ext}}))
	for i := range 50 {
		ld := plog.NewLogs()
		ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().AppendEmpty().Attributes().PutStr("id", fmt.Sprint(i))
		require.NoError(t, j.Append(ctx, ld))
	}
	require.NoError(t, r.Shutdown(ctx))
	assert.Equal(t, 50, sink.LogRecordCount(), "a shutdown drains what was appended before it")
	assert.True(t, sink.allFromJournal, "every delivery carries its journal info")
}

type infoSink struct {
	consumertest.LogsSink
	allFromJournal bool
	n              int
}

func (s *infoSink) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	_, ok := journal.FromContext(ctx)
	if s.n == 0 {
		s.allFromJournal = true
	}
	s.allFromJournal = s.allFromJournal && ok
	s.n++
	return s.LogsSink.ConsumeLogs(ctx, ld)
}

func TestStartNeedsAJournal(t *testing.T) {
	ctx := context.Background()
	cfg := &Config{Journal: component.MustNewID("journal")}
	r, err := NewFactory().CreateLogs(ctx, receivertest.NewNopSettings(metadata.Type), cfg, consumertest.NewNop())
	require.NoError(t, err)
	assert.ErrorContains(t, r.Start(ctx, componenttest.NewNopHost()), `journal extension "journal" not found`)
	var other notJournal
	assert.ErrorContains(t, r.Start(ctx, host{Host: componenttest.NewNopHost(), ext: map[component.ID]component.Component{cfg.Journal: other}}),
		"is not a journal")
	require.NoError(t, r.Shutdown(ctx), "shutdown is safe without a start")
}

type notJournal struct {
	component.StartFunc
	component.ShutdownFunc
}
