package reportextension

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/robfig/cron/v3"
	"go.uber.org/zap"
	"golang.org/x/mod/sumdb/note"

	"github.com/batchaudit/batchaudit/reports"
	"github.com/batchaudit/batchaudit/store"
)

// clock is time for the scheduler; tests drive a fake one.
type clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// reportStore is what the scheduler needs from the store.
type reportStore interface {
	store.Store
	store.Aggregator
	store.ReportIndex
}

type schedule struct {
	cfg    ScheduleConfig
	cron   cron.Schedule
	period periodKind
}

// scheduler produces the reports of closed periods, each once.
type scheduler struct {
	cfg       *Config
	loc       *time.Location
	logger    *zap.Logger
	clock     clock
	store     reportStore
	gen       *reports.Generator
	signer    note.Signer
	schedules []schedule
	// wake is when a report postponed for its attestation is due again
	// (zero: none is waiting).
	wake time.Time
}

// period is one report period [from, to).
type period struct{ from, to time.Time }

// run checks at start (catching up what was missed while down) and then at
// every cron time, until ctx ends.
func (s *scheduler) run(ctx context.Context) {
	for {
		now := s.clock.Now().In(s.loc)
		s.wake = time.Time{}
		for _, sc := range s.schedules {
			if ctx.Err() != nil {
				return
			}
			s.catchUp(ctx, sc, now)
		}
		next := now.Add(24 * time.Hour)
		for _, sc := range s.schedules {
			if n := sc.cron.Next(now); n.Before(next) {
				next = n
			}
		}
		if !s.wake.IsZero() && s.wake.Before(next) {
			next = s.wake
		}
		select {
		case <-ctx.Done():
			return
		case <-s.clock.After(next.Sub(now)):
		}
	}
}

// due lists the periods of a schedule that are closed and whose cron time
// has come, newest first, back to (not including) the last one recorded,
// at most max_catch_up; without any record, only the newest.
func (s *scheduler) due(sc schedule, now time.Time, recorded map[int64]bool, lastTo time.Time) []period {
	var out []period
	end := sc.period(now)
	for {
		p := period{from: sc.period.previous(end), to: end}
		end = p.from
		if !lastTo.IsZero() && !p.to.After(lastTo) {
			return out
		}
		// The first cron time at or after the period's end.
		if sc.cron.Next(p.to.Add(-time.Second)).After(now) {
			continue
		}
		if !recorded[p.from.UnixNano()] {
			out = append(out, p)
		}
		if lastTo.IsZero() || len(out) > s.cfg.MaxCatchUp {
			break
		}
	}
	if len(out) > s.cfg.MaxCatchUp {
		s.logger.Warn("Too many missed report periods: producing the newest only", zap.String("schedule", sc.cfg.Name),
			zap.Int("max_catch_up", s.cfg.MaxCatchUp), zap.Time("skipped_up_to", out[s.cfg.MaxCatchUp].to))
		out = out[:s.cfg.MaxCatchUp]
	}
	return out
}

func (s *scheduler) catchUp(ctx context.Context, sc schedule, now time.Time) {
	done, err := s.store.Reports(ctx, store.ReportQuery{Schedule: sc.cfg.Name})
	if err != nil {
		s.logger.Error("Cannot read the report index; will retry at the next cron time", zap.String("schedule", sc.cfg.Name), zap.Error(err))
		return
	}
	recorded := map[int64]bool{}
	var lastTo time.Time
	for _, r := range done {
		recorded[r.From.UnixNano()] = true
		if r.To.After(lastTo) {
			lastTo = r.To
		}
	}
	due := s.due(sc, now, recorded, lastTo)
	for i := len(due) - 1; i >= 0; i-- { // oldest first
		if ctx.Err() != nil {
			return
		}
		wait, err := s.produce(ctx, sc, due[i], now)
		if wait {
			// The next period's attestation starts from this one's
			// checkpoints: it waits too.
			at := due[i].to.Add(s.cfg.Attestation.Wait)
			s.logger.Info("No checkpoint covers the period's end yet; the report waits for one", zap.String("schedule", sc.cfg.Name),
				zap.Time("from", due[i].from), zap.Time("to", due[i].to), zap.Time("until", at))
			if s.wake.IsZero() || at.Before(s.wake) {
				s.wake = at
			}
			return
		}
		if err != nil {
			if ctx.Err() != nil {
				s.logger.Info("Report abandoned at shutdown; it is produced at the next start", zap.String("schedule", sc.cfg.Name),
					zap.Time("from", due[i].from), zap.Time("to", due[i].to))
				return
			}
			s.logger.Error("Report failed; will retry at the next cron time", zap.String("schedule", sc.cfg.Name),
				zap.Time("from", due[i].from), zap.Time("to", due[i].to), zap.Error(err))
		}
	}
}

// produce writes one report, signs it and records it in the store. A
// report that no checkpoint covers yet is not written (wait) until
// attestation.wait after the period's end.
func (s *scheduler) produce(ctx context.Context, sc schedule, p period, now time.Time) (wait bool, err error) {
	req := reports.Request{Kind: sc.cfg.Kind, From: p.from.UTC(), To: p.to.UTC(), Filters: sc.cfg.Filters.filters(), Schedule: sc.cfg.Name}
	r, err := s.gen.Generate(ctx, req)
	if err != nil {
		return false, err
	}
	if r.Attestation.Status == reports.AttestationNotCovered && now.Before(p.to.Add(s.cfg.Attestation.Wait)) {
		return true, nil
	}
	formats := sc.cfg.Formats
	if len(formats) == 0 {
		formats = []string{reports.FormatHTML, reports.FormatJSON, reports.FormatCSV}
	}
	w, err := reports.Write(ctx, r, filepath.Join(s.cfg.OutputDir, sc.cfg.Name), formats, s.signer, reports.WriteOptions{Chromium: s.cfg.Chromium})
	if err != nil {
		return false, err
	}
	rec := reports.NewRecord(r, w, sc.cfg.Name)
	created, err := s.store.RecordReport(ctx, rec)
	if err != nil {
		return false, fmt.Errorf("record report %s: %w", rec.ID, err)
	}
	if !created {
		s.logger.Warn("Report was already recorded (another instance?); its files were rewritten with the same content",
			zap.String("report", rec.ID))
	}
	s.logger.Info("Report written", zap.String("schedule", sc.cfg.Name), zap.String("report_id", r.Envelope.ID),
		zap.Time("from", req.From), zap.Time("to", req.To), zap.String("dir", w.Dir), zap.String("content_sha256", w.ContentSHA256),
		zap.String("attestation", r.Attestation.Status), zap.String("checkpoint_signatures", r.Attestation.Verification.Status))
	return false, nil
}
