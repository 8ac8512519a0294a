package reportextension

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.uber.org/zap"

	"github.com/batchaudit/batchaudit/reports"
	"github.com/batchaudit/batchaudit/signing"
	"github.com/batchaudit/batchaudit/store/esstore"
	"github.com/batchaudit/batchaudit/store/sqlitestore"
)

type reportExtension struct {
	cfg    *Config
	logger *zap.Logger
	clock  clock
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closer interface{ Close() error }
}

func newExtension(cfg *Config, set extension.Settings, c clock) *reportExtension {
	return &reportExtension{cfg: cfg, logger: set.Logger, clock: c}
}

// Start loads the key, opens the store and starts the schedules in the
// background; without schedules it does nothing.
func (e *reportExtension) Start(_ context.Context, _ component.Host) error {
	if len(e.cfg.Schedules) == 0 {
		e.logger.Info("No report schedules configured")
		return nil
	}
	signer, err := signing.LoadSigner(e.cfg.SigningKeyFile)
	if err != nil {
		return err
	}
	loc, err := time.LoadLocation(e.cfg.Timezone)
	if err != nil {
		return err
	}
	keys, err := signing.LoadVerifiers(e.cfg.Attestation.CheckpointKeys)
	if err != nil {
		return fmt.Errorf("attestation.checkpoint_keys: %w", err)
	}
	s := &scheduler{cfg: e.cfg, loc: loc, logger: e.logger, clock: e.clock, signer: signer}
	for _, sc := range e.cfg.Schedules {
		c, err := cronParser.Parse(sc.Cron)
		if err != nil {
			return fmt.Errorf("schedule %s: %w", sc.Name, err)
		}
		s.schedules = append(s.schedules, schedule{cfg: sc, cron: c, period: periods[sc.Period]})
	}
	// esstore.New returns while Elasticsearch is down (reads retry), so
	// the collector starts; the schedules then retry at their cron times.
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	st, err := openStore(ctx, e.cfg, e.logger)
	if err != nil {
		cancel()
		return err
	}
	e.closer = st
	s.store = st
	s.gen = &reports.Generator{Source: st, StoreName: storeName(e.cfg), Catalog: e.cfg.Catalog,
		RedactionKey: []byte(e.cfg.RedactionKey), Now: e.clock.Now, CheckpointKeys: keys, OriginPrefix: e.cfg.Attestation.OriginPrefix}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		s.run(ctx)
	}()
	e.logger.Info("Report schedules started", zap.Int("schedules", len(s.schedules)), zap.String("output_dir", e.cfg.OutputDir))
	return nil
}

// Shutdown stops the schedules (a report being written is abandoned; its
// period is produced again at the next start) and closes the store. It is
// safe without Start.
func (e *reportExtension) Shutdown(context.Context) error {
	if e.cancel != nil {
		e.cancel()
	}
	e.wg.Wait()
	if e.closer != nil {
		return e.closer.Close()
	}
	return nil
}

func openStore(ctx context.Context, cfg *Config, logger *zap.Logger) (reportStore, error) {
	if es := cfg.Elasticsearch.Get(); es != nil && cfg.Elasticsearch.HasValue() {
		return esstore.New(ctx, *es, logger)
	}
	s, err := sqlitestore.Open(ctx, sqlitePath(cfg))
	if err != nil {
		return nil, err
	}
	// Reports read in bulk: one connection with a small cache keeps the
	// collector's memory bounded (the exporter has its own connections).
	if err := s.ForReports(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

func sqlitePath(cfg *Config) string {
	if cfg.SQLite.Path == "" {
		return sqlitestore.DefaultPath
	}
	return cfg.SQLite.Path
}

func storeName(cfg *Config) string {
	if es := cfg.Elasticsearch.Get(); es != nil && cfg.Elasticsearch.HasValue() {
		return fmt.Sprintf("elasticsearch:%v index prefix %s", es.Endpoints, es.IndexPrefix)
	}
	return "sqlite:" + sqlitePath(cfg)
}
