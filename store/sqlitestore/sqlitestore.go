// Package sqlitestore is the embedded, zero-setup backend of the store
// contract: one SQLite file (pure Go driver, no cgo) in WAL mode, one
// transaction per Write call. docs/storage.md describes the schema.
package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/batchaudit/batchaudit/store"
)

// DefaultPath is where the exporter and the CLI look for the trail when no
// path is configured.
const DefaultPath = "./batchaudit-data/audit.db"

// Memory opens a private in-memory database: for tests only, since the
// trail is gone when the store is closed.
const Memory = ":memory:"

// schemaVersion is kept in PRAGMA user_version so a later layout can migrate.
const schemaVersion = 3

var schema = []string{
	`CREATE TABLE IF NOT EXISTS streams (
		name          TEXT PRIMARY KEY,
		last_sequence INTEGER NOT NULL,
		tree_root     TEXT NOT NULL DEFAULT ''
	) WITHOUT ROWID`,
	`CREATE TABLE IF NOT EXISTS events (
		id               TEXT PRIMARY KEY,
		stream           TEXT NOT NULL,
		sequence         INTEGER NOT NULL,
		hash             TEXT NOT NULL,
		name             TEXT NOT NULL,
		time             INTEGER NOT NULL,
		batch_id         TEXT NOT NULL,
		record_id        TEXT NOT NULL,
		source_name      TEXT NOT NULL,
		source           TEXT NOT NULL,
		target_name      TEXT NOT NULL,
		target           TEXT NOT NULL,
		change_type      TEXT NOT NULL,
		document         TEXT NOT NULL,
		ingested         INTEGER NOT NULL,
		actor_id         TEXT NOT NULL DEFAULT '',
		lineage_id       TEXT NOT NULL DEFAULT '',
		finding_type     TEXT NOT NULL DEFAULT ''
	)`,
	`CREATE UNIQUE INDEX IF NOT EXISTS events_stream_sequence ON events(stream, sequence)`,
	`CREATE INDEX IF NOT EXISTS events_time ON events(time, sequence)`,
	// Partial indices keep events without the column out of them; queries
	// repeat the "<> ''" condition so the planner can use them.
	`CREATE INDEX IF NOT EXISTS events_batch ON events(batch_id, time, sequence) WHERE batch_id <> ''`,
	`CREATE INDEX IF NOT EXISTS events_record ON events(record_id, time, sequence) WHERE record_id <> ''`,
	`CREATE INDEX IF NOT EXISTS events_source_name ON events(source_name) WHERE source_name <> ''`,
	`CREATE INDEX IF NOT EXISTS events_target_name ON events(target_name) WHERE target_name <> ''`,
	`CREATE INDEX IF NOT EXISTS events_actor ON events(actor_id, time, sequence) WHERE actor_id <> ''`,
	`CREATE INDEX IF NOT EXISTS events_lineage ON events(lineage_id, time, sequence) WHERE lineage_id <> ''`,
	`CREATE INDEX IF NOT EXISTS events_finding ON events(finding_type, time, sequence) WHERE finding_type <> ''`,
	`CREATE TABLE IF NOT EXISTS runs (
		batch_id  TEXT PRIMARY KEY,
		job_name  TEXT NOT NULL,
		status    TEXT NOT NULL,
		actor_id  TEXT NOT NULL,
		start     INTEGER NOT NULL,
		end       INTEGER NOT NULL,
		summary   TEXT NOT NULL,
		parent_id TEXT NOT NULL DEFAULT ''
	) WITHOUT ROWID`,
	`CREATE INDEX IF NOT EXISTS runs_start ON runs(start)`,
	`CREATE INDEX IF NOT EXISTS runs_job ON runs(job_name, start)`,
	`CREATE INDEX IF NOT EXISTS runs_status ON runs(status, start)`,
	`CREATE INDEX IF NOT EXISTS runs_actor ON runs(actor_id, start)`,
	`CREATE INDEX IF NOT EXISTS runs_parent ON runs(parent_id, start) WHERE parent_id <> ''`,
	`CREATE TABLE IF NOT EXISTS dead_letters (
		stream    TEXT NOT NULL,
		sequence  INTEGER NOT NULL,
		event_id  TEXT NOT NULL,
		hash      TEXT NOT NULL,
		doc_hash  TEXT NOT NULL,
		reason    TEXT NOT NULL,
		document  TEXT NOT NULL,
		time      INTEGER NOT NULL,
		ingested  INTEGER NOT NULL,
		kind      TEXT NOT NULL DEFAULT 'dead_letter',
		PRIMARY KEY (stream, sequence)
	) WITHOUT ROWID`,
	// doc_hash (SHA-256 of the stored document) rather than hash makes the
	// key: an event that cannot be hashed has no hash but still a document.
	`CREATE UNIQUE INDEX IF NOT EXISTS dead_letters_key ON dead_letters(stream, event_id, doc_hash)`,
	`CREATE INDEX IF NOT EXISTS dead_letters_time ON dead_letters(time, sequence)`,
	// The Merkle tree of every stream: tiles (c2sp.org/tlog-tiles, height 8),
	// the widest version of each; and the signed checkpoints.
	`CREATE TABLE IF NOT EXISTS tiles (
		stream TEXT NOT NULL,
		level  INTEGER NOT NULL,
		idx    INTEGER NOT NULL,
		width  INTEGER NOT NULL,
		data   BLOB NOT NULL,
		PRIMARY KEY (stream, level, idx)
	) WITHOUT ROWID`,
	`CREATE TABLE IF NOT EXISTS checkpoints (
		stream  TEXT NOT NULL,
		size    INTEGER NOT NULL,
		root    TEXT NOT NULL,
		note    TEXT NOT NULL,
		created INTEGER NOT NULL,
		PRIMARY KEY (stream, size)
	) WITHOUT ROWID`,
}

// upgradeV1 adds the search columns of schema 2 to a version 1 database and
// fills them from the stored documents, before schema creates their indices.
var upgradeV1 = []string{
	`ALTER TABLE events ADD COLUMN actor_id TEXT NOT NULL DEFAULT ''`,
	`ALTER TABLE events ADD COLUMN lineage_id TEXT NOT NULL DEFAULT ''`,
	`ALTER TABLE events ADD COLUMN finding_type TEXT NOT NULL DEFAULT ''`,
	`UPDATE events SET
		actor_id = coalesce(json_extract(document, '$.attributes."user.id"'), ''),
		lineage_id = coalesce(json_extract(document, '$.attributes."batchaudit.lineage.id"'), ''),
		finding_type = coalesce(json_extract(document, '$.attributes."batchaudit.finding.type"'), '')`,
	`ALTER TABLE runs ADD COLUMN parent_id TEXT NOT NULL DEFAULT ''`,
	`UPDATE runs SET parent_id = coalesce(json_extract(summary, '$.parent_batch_id'), '')`,
}

// upgradeV2 adds what schema 3 keeps for the Merkle log; the tree of an
// existing trail is built from its entries when the stream is next loaded.
var upgradeV2 = []string{
	`ALTER TABLE streams ADD COLUMN tree_root TEXT NOT NULL DEFAULT ''`,
	`ALTER TABLE dead_letters ADD COLUMN kind TEXT NOT NULL DEFAULT 'dead_letter'`,
}

// Store is the SQLite backend. It is safe for concurrent use; writes are
// serialised (SQLite has one writer anyway).
type Store struct {
	db   *sql.DB
	path string
	// maxConns is the pool's size.
	maxConns int
	// readTile is prepared once: verification reads a tile every 256
	// entries, and preparing it was ≈40% of reading one.
	readTile *sql.Stmt
	mu       sync.Mutex // one write transaction at a time (SQLite has one writer anyway)
	log      *store.Log
	// now is the ingest clock; tests replace it.
	now func() time.Time
}

var _ store.Store = (*Store)(nil)

// Open opens (creating it and its directory if needed) the database at path,
// or a private in-memory database for Memory.
func Open(ctx context.Context, path string) (*Store, error) {
	return OpenWithLogger(ctx, path, zap.NewNop())
}

// OpenWithLogger is Open with a logger for long work, such as building the
// Merkle tree of a trail stored before it had one (store.LogProgress).
func OpenWithLogger(ctx context.Context, path string, logger *zap.Logger) (*Store, error) {
	if path == "" {
		path = DefaultPath
	}
	maxConns := 4 // WAL lets readers run beside the writer
	if path == Memory {
		maxConns = 1 // every connection to :memory: is a separate database
	} else if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("sqlitestore: create directory for %s: %w", path, err)
		}
	}
	// synchronous(FULL): a committed Write survives power loss, which is the
	// promise the exporter makes when it reports a batch as sent.
	// cache_size (8 MiB per connection, up to maxConns of them, outside the
	// Go heap) and temp_store(MEMORY) keep a write's transaction, and its
	// statement journal, off the disk until commit. 32 MiB per connection
	// made SQLite the largest part of the collector's memory (docs/performance.md)
	// for no measured gain: the OS page cache holds the file anyway.
	// _txlock=immediate takes the write lock at BEGIN, so two processes on
	// one file wait (busy_timeout) instead of failing at upgrade.
	dsn := path + "?_pragma=cache_size(-8192)&_pragma=temp_store(MEMORY)&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	s := &Store{db: db, path: path, maxConns: maxConns, now: time.Now}
	s.log = store.NewLog(backend{s}, store.LogOptions{Progress: store.LogProgress(logger)})
	if err := s.migrate(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("sqlitestore: %s: %w", path, err)
	}
	if s.readTile, err = db.PrepareContext(ctx, `SELECT data FROM tiles WHERE stream = ? AND level = ? AND idx = ?`); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("sqlitestore: %s: %w", path, err)
	}
	return s, nil
}

func (s *Store) migrate(ctx context.Context) error {
	var version int
	if err := s.db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return err
	}
	if version > schemaVersion {
		return fmt.Errorf("schema version %d is newer than this build understands (%d)", version, schemaVersion)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if version == 1 {
		for _, stmt := range upgradeV1 {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("upgrade schema 1 to 2: %w", err)
			}
		}
	}
	if version >= 1 && version <= 2 {
		for _, stmt := range upgradeV2 {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("upgrade schema 2 to 3: %w", err)
			}
		}
	}
	for _, stmt := range schema {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("create schema: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, schemaVersion)); err != nil {
		return err
	}
	return tx.Commit()
}

// Path returns the database file the store was opened on.
func (s *Store) Path() string { return s.path }

// DB exposes the database handle for read-only diagnostics and tests.
func (s *Store) DB() *sql.DB { return s.db }

// LastSequence implements store.Store. It covers events and dead letters.
func (s *Store) LastSequence(ctx context.Context, stream string) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT last_sequence FROM streams WHERE name = ?`, stream).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: last sequence of %q: %w", stream, err)
	}
	return n, nil
}

// Close implements store.Store; calling it twice is harmless.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.readTile.Close() // before the connections it is prepared on
	return s.db.Close()
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
