package auditexporter

import (
	"context"
	"errors"

	"go.uber.org/zap"

	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/esstore"
	"github.com/batchaudit/batchaudit/store/sqlitestore"
)

// The exporter chooses its backend here and nowhere else: backendName,
// validateBackend and openStore are the whole factory. A new backend adds a
// config section and a case in each.

const (
	backendSQLite        = "sqlite"
	backendElasticsearch = "elasticsearch"
)

var errTwoBackends = errors.New("sqlite.path and elasticsearch are both set: configure one backend")

// backendName says which backend the configuration selects: Elasticsearch
// when its section is present, otherwise SQLite.
func (cfg *Config) backendName() string {
	if cfg.Elasticsearch.HasValue() {
		return backendElasticsearch
	}
	return backendSQLite
}

// validateBackend checks the choice; each section validates its own fields.
func (cfg *Config) validateBackend() []error {
	if cfg.Elasticsearch.HasValue() && cfg.SQLite.Path != "" {
		return []error{errTwoBackends}
	}
	return nil
}

// defaultElasticsearchConfig is the section's defaults without endpoints,
// so that naming the section without endpoints is an error rather than a
// silent connection to localhost.
func defaultElasticsearchConfig() esstore.Config {
	c := esstore.NewDefaultConfig()
	c.Endpoints = nil
	return c
}

// openStore opens the backend the configuration selects.
func openStore(ctx context.Context, cfg *Config, logger *zap.Logger) (store.Store, error) {
	if es := cfg.Elasticsearch.Get(); es != nil && cfg.Elasticsearch.HasValue() {
		return esstore.New(ctx, *es, logger)
	}
	return sqlitestore.OpenWithLogger(ctx, cfg.sqlitePath(), logger)
}

func (cfg *Config) sqlitePath() string {
	if cfg.SQLite.Path == "" {
		return sqlitestore.DefaultPath
	}
	return cfg.SQLite.Path
}
