package reportextension

import (
	"context"
	"encoding/json"
	"fmt"
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
	"golang.org/x/mod/sumdb/note"

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
	keyFile, verifier := reportKey(t, dir)

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

// TestScheduledAttestation runs a daily SOX schedule (00:05, attestation
// wait 10 minutes) over a trail whose checkpoints come late or never: a
// report waits for a checkpoint covering its period, proves consistency
// from the previous report of the schedule, and is written saying it is
// not covered once the wait is over.
func TestScheduledAttestation(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := filepath.Join(dir, "audit.db")
	s, err := sqlitestore.Open(ctx, db)
	require.NoError(t, err)
	defer s.Close()
	cpSigner, _, cpKey := storetest.CheckpointKey()
	runOn := func(d int) {
		_, err := s.Write(ctx, "default", storetest.Stored(storetest.RunEvents(fmt.Sprint("d", d), day(d, 12))...))
		require.NoError(t, err)
	}
	keyFile, verifier := reportKey(t, dir)
	cfg := createDefaultConfig().(*Config)
	cfg.SQLite.Path, cfg.SigningKeyFile, cfg.OutputDir = db, keyFile, filepath.Join(dir, "reports")
	cfg.Attestation.CheckpointKeys, cfg.Attestation.Wait = []string{cpKey}, 10*time.Minute
	cfg.Schedules = []ScheduleConfig{{Name: "sox-daily", Kind: reports.KindSOX, Cron: "5 0 * * *", Period: "day", Formats: []string{"json"}}}
	require.NoError(t, cfg.Validate())
	at := func(d, h, m int) time.Time { return time.Date(2026, 11, d, h, m, 0, 0, time.UTC) }
	latest := func() (store.ReportRecord, reports.Attestation) {
		t.Helper()
		recs, err := s.Reports(ctx, store.ReportQuery{Schedule: "sox-daily"})
		require.NoError(t, err)
		require.NotEmpty(t, recs)
		r := recs[len(recs)-1]
		_, err = reports.Verify(r.Location, verifier)
		require.NoError(t, err)
		b, err := os.ReadFile(filepath.Join(r.Location, reports.JSONFile))
		require.NoError(t, err)
		var rep reports.Report
		require.NoError(t, json.Unmarshal(b, &rep))
		return r, rep.Attestation
	}

	runOn(1)
	storetest.SignCheckpoint(t, s, "default", cpSigner, at(1, 13, 0)) // 17
	runOn(2)                                                          // 18..34, signed late
	clk := newFakeClock(at(2, 0, 5))
	core, logs := observer.New(zap.InfoLevel)
	set := extensiontest.NewNopSettings(metadata.Type)
	set.Logger = zap.New(core)
	e := newExtension(cfg, set, clk)
	require.NoError(t, e.Start(ctx, componenttest.NewNopHost()))
	defer func() { require.NoError(t, e.Shutdown(ctx)) }()
	assert.Equal(t, at(3, 0, 5), clk.waitIdle(t))
	rec, a := latest()
	assert.Equal(t, day(1, 0), rec.From)
	require.Equal(t, reports.AttestationCovered, a.Status, a.Statement)
	assert.Equal(t, reports.VerificationVerified, a.Verification.Status)
	assert.Equal(t, []store.ReportCheckpoint{{Stream: "default", Size: 17, Note: a.Streams[0].Checkpoint.Note}}, rec.Checkpoints)

	// Nov 2 is due at 00:05 on Nov 3, but its entries (1..34) are not
	// signed yet: the report waits until 00:10.
	clk.Set(at(3, 0, 5))
	assert.Equal(t, at(3, 0, 10), clk.waitIdle(t), "wakes when the wait is over")
	assert.Equal(t, 1, logs.FilterMessage("No checkpoint covers the period's end yet; the report waits for one").Len())
	storetest.SignCheckpoint(t, s, "default", cpSigner, at(3, 0, 7)) // 34
	clk.Set(at(3, 0, 10))
	assert.Equal(t, at(4, 0, 5), clk.waitIdle(t))
	rec, a = latest()
	assert.Equal(t, day(2, 0), rec.From)
	require.Equal(t, reports.AttestationCovered, a.Status, a.Statement)
	assert.Equal(t, latestID(t, s, day(1, 0)), a.Previous.ID)
	assert.Equal(t, []int64{34, 17}, []int64{a.Streams[0].Checkpoint.TreeSize, a.Streams[0].Previous.TreeSize})
	_, err = reports.VerifyAttestation(&a, []note.Verifier{mustVerifier(t, cpKey)}, "")
	require.NoError(t, err)

	// Nov 3's run is never signed: after the wait the report says so.
	runOn(3)
	clk.Set(at(4, 0, 5))
	assert.Equal(t, at(4, 0, 10), clk.waitIdle(t))
	clk.Set(at(4, 0, 10))
	assert.Equal(t, at(5, 0, 5), clk.waitIdle(t))
	rec, a = latest()
	assert.Equal(t, day(3, 0), rec.From)
	assert.Equal(t, reports.AttestationNotCovered, a.Status)
	assert.Contains(t, a.Streams[0].Statement, "no kept checkpoint of stream default covers its entries 1..51; the latest is of size 34")
	assert.Empty(t, rec.Checkpoints, "nothing for the next report to start from")
	assert.Zero(t, logs.FilterLevelExact(zap.ErrorLevel).Len(), "%v", logs.FilterLevelExact(zap.ErrorLevel).All())
}

func latestID(t *testing.T, s store.ReportIndex, from time.Time) string {
	t.Helper()
	recs, err := s.Reports(context.Background(), store.ReportQuery{Schedule: "sox-daily"})
	require.NoError(t, err)
	for _, r := range recs {
		if r.From.Equal(from) {
			return r.ID
		}
	}
	t.Fatalf("no report from %s", from)
	return ""
}

func mustVerifier(t *testing.T, key string) note.Verifier {
	t.Helper()
	v, err := signing.LoadVerifier(key)
	require.NoError(t, err)
	return v
}

// reportKey writes a report signer key into dir and returns its file and
// verifier.
func reportKey(t *testing.T, dir string) (string, note.Verifier) {
	t.Helper()
	skey, vkey, err := signing.GenerateKey("reports.test")
	require.NoError(t, err)
	keyFile := filepath.Join(dir, "report.key")
	require.NoError(t, signing.WriteSignerKey(keyFile, skey))
	return keyFile, mustVerifier(t, vkey)
}
