package reportextension

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/batchaudit/batchaudit/extension/reportextension/internal/metadata"
	"github.com/batchaudit/batchaudit/reports"
	"github.com/batchaudit/batchaudit/signing"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/sqlitestore"
	"github.com/batchaudit/batchaudit/store/storetest"
)

// fakeClock is a clock the test moves by hand (unit test only). Each call
// of After means the scheduler finished a round and waits: it is reported
// on idle.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []fakeTimer
	idle   chan time.Time
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{now: t, idle: make(chan time.Time, 16)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.timers = append(c.timers, fakeTimer{c.now.Add(d), ch})
	c.idle <- c.now.Add(d)
	return ch
}

// Set moves the clock and fires the timers that are due.
func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
	kept := c.timers[:0]
	for _, tm := range c.timers {
		if !tm.at.After(t) {
			tm.ch <- t
		} else {
			kept = append(kept, tm)
		}
	}
	c.timers = kept
}

// waitIdle waits until the scheduler waits for its next cron time and
// returns that time.
func (c *fakeClock) waitIdle(t *testing.T) time.Time {
	t.Helper()
	select {
	case next := <-c.idle:
		return next
	case <-time.After(30 * time.Second):
		t.Fatal("the scheduler did not finish its round")
		return time.Time{}
	}
}

func day(d int, h int) time.Time { return time.Date(2026, 11, d, h, 0, 0, 0, time.UTC) }

// TestScheduleCatchUpNeverTwice runs a daily SOX schedule (cron 06:00) on
// a fake clock: it fires, catches up the days missed while stopped, never
// produces a day twice, and every report is signed and verifies.
func TestScheduleCatchUpNeverTwice(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "audit.db")
	s, err := sqlitestore.Open(context.Background(), db)
	require.NoError(t, err)
	for i := range 6 { // one run per day, Nov 1..6
		_, err := s.Write(context.Background(), "default", storetest.Stored(storetest.RunEvents("b"+string(rune('1'+i)), storetest.T0.AddDate(0, 0, i))...))
		require.NoError(t, err)
	}
	require.NoError(t, s.Close())
	skey, vkey, err := signing.GenerateKey("reports.test")
	require.NoError(t, err)
	keyFile := filepath.Join(dir, "report.key")
	require.NoError(t, signing.WriteSignerKey(keyFile, skey))
	verifier, err := signing.LoadVerifier(vkey)
	require.NoError(t, err)

	cfg := createDefaultConfig().(*Config)
	cfg.SQLite.Path, cfg.SigningKeyFile, cfg.OutputDir = db, keyFile, filepath.Join(dir, "reports")
	cfg.Schedules = []ScheduleConfig{{Name: "sox-daily", Kind: reports.KindSOX, Cron: "0 6 * * *", Period: "day", Formats: []string{"json", "html"}}}
	require.NoError(t, cfg.Validate())

	clk := newFakeClock(day(3, 5))
	core, logs := observer.New(zap.InfoLevel)
	start := func() *reportExtension {
		set := extensiontest.NewNopSettings(metadata.Type)
		set.Logger = zap.New(core)
		e := newExtension(cfg, set, clk)
		require.NoError(t, e.Start(context.Background(), componenttest.NewNopHost()))
		return e
	}
	index := func() []store.ReportRecord {
		t.Helper()
		s, err := sqlitestore.Open(context.Background(), db)
		require.NoError(t, err)
		defer s.Close()
		got, err := s.Reports(context.Background(), store.ReportQuery{Schedule: "sox-daily"})
		require.NoError(t, err)
		return got
	}
	days := func(recs []store.ReportRecord) []int {
		var out []int
		for _, r := range recs {
			assert.Equal(t, r.From.AddDate(0, 0, 1), r.To, "a day")
			out = append(out, r.From.Day())
		}
		return out
	}

	// 05:00 on Nov 3: Nov 2's report is not due before 06:00; with no
	// report yet, only the newest due day (Nov 1) is produced.
	e := start()
	assert.Equal(t, day(3, 6), clk.waitIdle(t), "sleeps until the next cron time")
	assert.Equal(t, []int{1}, days(index()))
	clk.Set(day(3, 6)) // the cron fires
	assert.Equal(t, day(4, 6), clk.waitIdle(t))
	assert.Equal(t, []int{1, 2}, days(index()))
	require.NoError(t, e.Shutdown(context.Background()))

	// Down from Nov 3 06:00 to Nov 6 07:00: Nov 3, 4 and 5 are caught up.
	clk.Set(day(6, 7))
	e = start()
	clk.waitIdle(t)
	assert.Equal(t, []int{1, 2, 3, 4, 5}, days(index()))
	require.NoError(t, e.Shutdown(context.Background()))

	// Restarted at the same time: nothing is produced twice.
	written := logs.FilterMessage("Report written").Len()
	e = start()
	clk.waitIdle(t)
	require.NoError(t, e.Shutdown(context.Background()))
	assert.Equal(t, written, logs.FilterMessage("Report written").Len())
	assert.Equal(t, 5, written)
	recs := index()
	require.Len(t, recs, 5)
	entries, err := os.ReadDir(filepath.Join(dir, "reports", "sox-daily"))
	require.NoError(t, err)
	assert.Len(t, entries, 5, "one directory per day, no partial ones")
	for i, r := range recs {
		v, err := reports.Verify(r.Location, verifier)
		require.NoError(t, err, r.ID)
		assert.Equal(t, r.ContentSHA256, v.ContentSHA256)
		assert.Equal(t, "sox-daily/"+v.ReportID, r.ID)
		assert.ElementsMatch(t, []string{"report.json", "report.html", "report.sig"}, r.Files)
		var rep reports.Report
		b, err := os.ReadFile(filepath.Join(r.Location, reports.JSONFile))
		require.NoError(t, err)
		require.NoError(t, jsonUnmarshal(b, &rep))
		runs, _ := rep.Metric("runs")
		assert.Equal(t, int64(1), runs, "one run per day (day %d)", i+1)
		assert.True(t, rep.Completeness.PeriodClosed)
		assert.Equal(t, clkTimeOf(r), rep.Envelope.GeneratedAt, "generated at the fake clock's time")
	}
	assert.Zero(t, logs.FilterLevelExact(zap.ErrorLevel).Len(), "no errors: %v", logs.FilterLevelExact(zap.ErrorLevel).All())
}

func clkTimeOf(r store.ReportRecord) time.Time { return r.GeneratedAt }

func TestDue(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	mk := func(cronSpec, p string) schedule {
		c, err := cronParser.Parse(cronSpec)
		require.NoError(t, err)
		return schedule{cfg: ScheduleConfig{Name: "x"}, cron: c, period: periods[p]}
	}
	s := &scheduler{cfg: &Config{MaxCatchUp: 3}, logger: zap.NewNop()}
	none := map[int64]bool{}
	// Monthly, first of the month at 00:10: at Nov 1 00:05 October is not due yet.
	now := time.Date(2026, 11, 1, 0, 5, 0, 0, time.UTC)
	got := s.due(mk("10 0 1 * *", "month"), now, none, time.Time{})
	require.Len(t, got, 1)
	assert.Equal(t, period{time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)}, got[0])
	// Quarter in Berlin time, after the last report was Q1: Q2 and Q3.
	now = time.Date(2026, 11, 15, 12, 0, 0, 0, berlin)
	q2 := time.Date(2026, 4, 1, 0, 0, 0, 0, berlin)
	got = s.due(mk("@daily", "quarter"), now, none, q2)
	assert.Equal(t, []period{{time.Date(2026, 7, 1, 0, 0, 0, 0, berlin), time.Date(2026, 10, 1, 0, 0, 0, 0, berlin)},
		{q2, time.Date(2026, 7, 1, 0, 0, 0, 0, berlin)}}, got)
	// Weeks start on Monday; a recorded week in the middle is not redone;
	// more missed periods than max_catch_up: the newest three.
	now = time.Date(2026, 11, 19, 9, 0, 0, 0, time.UTC) // a Thursday
	mon := func(d int) time.Time { return time.Date(2026, 11, d, 0, 0, 0, 0, time.UTC) }
	got = s.due(mk("0 1 * * 1", "week"), now, map[int64]bool{mon(2).UnixNano(): true}, mon(2).AddDate(0, 0, -21))
	assert.Equal(t, []period{{mon(9), mon(16)}, {mon(2).AddDate(0, 0, -7), mon(2)}, {mon(2).AddDate(0, 0, -14), mon(2).AddDate(0, 0, -7)}}, got)
	// Hours.
	now = time.Date(2026, 11, 19, 9, 30, 0, 0, time.UTC)
	got = s.due(mk("15 * * * *", "hour"), now, none, time.Date(2026, 11, 19, 7, 0, 0, 0, time.UTC))
	h := func(n int) time.Time { return time.Date(2026, 11, 19, n, 0, 0, 0, time.UTC) }
	assert.Equal(t, []period{{h(8), h(9)}, {h(7), h(8)}}, got, "newest first, back to the last recorded end (07:00)")
}

func TestStartErrors(t *testing.T) {
	cfg := createDefaultConfig().(*Config)
	cfg.SQLite.Path = ":memory:"
	cfg.SigningKeyFile = filepath.Join(t.TempDir(), "missing.key")
	cfg.Schedules = []ScheduleConfig{{Name: "s", Kind: reports.KindSOX, Cron: "@daily", Period: "day"}}
	e := newExtension(cfg, extensiontest.NewNopSettings(metadata.Type), realClock{})
	assert.ErrorContains(t, e.Start(context.Background(), componenttest.NewNopHost()), "signer key")
	require.NoError(t, e.Shutdown(context.Background()))
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
