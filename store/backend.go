package store

import (
	"context"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/batchaudit/batchaudit/store/merkle"
)

// The store's rules (dedupe, conflict, dead letter, numbering, run
// summaries, the Merkle log) live in one place, Log; a backend only stores
// and reads what Log decided, through the primitives below.

// Key identifies a stored entry for deduplication: an event by its id, a
// dead letter by the event id and the SHA-256 of the document kept.
type Key struct {
	DeadLetter bool
	ID         string
	DocHash    string // dead letters only
}

// Ref is what is stored under a key.
type Ref struct {
	Sequence int64
	// Hash is the stored hash (the leaf's).
	Hash string
	// Document is, for an event, its stored canonical document: when a
	// redelivery differs in Hash, Log compares the content hashes (see
	// auditevent.Event.ContentHash), which need it.
	Document []byte
}

// EntryStatus is what Tx.Append did with one entry.
type EntryStatus uint8

const (
	// Created: the entry is now stored.
	Created EntryStatus = iota + 1
	// Exists: its key was already taken (found only at create time; Log
	// then looks up what is there).
	Exists
	// Rejected: the backend refused the document for good (e.g. the
	// mapping); Log keeps the event as a dead letter in the same place.
	Rejected
	// Failed: a transient failure outlasted the retries; the write fails.
	Failed
)

// Entry is one place in a stream: an event, a dead letter or a gap.
type Entry struct {
	Kind     merkle.Kind
	Sequence int64
	Key      Key
	// Event is the event an event or dead-letter entry keeps (nil for gaps).
	Event *StoredEvent
	// Hash is what the leaf binds: event.hash for events, the SHA-256 of
	// Document for dead letters and gaps.
	Hash string
	// EventHash is, for a dead letter, the hash of the event's canonical
	// content (empty when it has none); for an event it equals Hash.
	EventHash string
	// Document is what is stored: the canonical JSON of an event, the
	// document kept with a dead letter, the description of a gap.
	Document []byte
	// Reason explains a dead letter or a gap.
	Reason       string
	Conflict     bool
	ExistingHash string

	// Set by Tx.Append.
	Status       EntryStatus
	StatusReason string
}

// Head is the stored tree of a stream: its size, its root when the backend
// keeps it, and the stored tiles.
type Head struct {
	Size int64
	// Root is set when the backend stored it with the size (atomically).
	Root  *tlog.Hash
	Tiles tlog.TileReader
	// Uncommitted: the backend has no transactions, so entries beyond Size
	// are expected now and then (a write in progress, or one a crash
	// interrupted before it stored its tiles); Log adopts them at its next
	// load. On a transactional backend they cannot exist.
	Uncommitted bool
}

// Tx is one write of one stream. On an atomic backend it is one
// transaction; otherwise every call writes at once and Log orders the calls
// so that a crash between them is repaired from the stored entries.
type Tx interface {
	// Lookup returns the stored refs of the keys that are stored.
	Lookup(keys []Key) (map[Key]Ref, error)
	// Append stores the entries (never overwriting) and sets their Status.
	Append(entries []*Entry) error
	// Runs returns the stored summaries of the batch ids that have one.
	Runs(batchIDs []string) (map[string]*Run, error)
	// PutRuns stores new versions of run summaries read with Runs (or new).
	PutRuns(runs []*Run) error
	// PutTree stores the tiles that changed and the tree head they cover.
	PutTree(head tlog.Tree, tiles []merkle.Tile) error
	Commit() error
	Rollback()
}

// Backend is a storage engine under Log.
type Backend interface {
	Begin(ctx context.Context, stream string) (Tx, error)
	// Head returns the stream's stored tree.
	Head(ctx context.Context, stream string) (Head, error)
	// Tail calls fn, in sequence order, for the entries stored after the
	// tree's size: on an atomic backend only an older layout without a tree
	// has any; otherwise they are what a crashed write left behind.
	Tail(ctx context.Context, stream string, after int64, fn func(*Entry) error) error
	// RecentKeys calls fn for the keys of the newest n entries.
	RecentKeys(ctx context.Context, stream string, n int, fn func(Key)) error
	// Atomic reports whether a Tx is all or nothing.
	Atomic() bool
	// LookupAll reports whether Lookup is cheap enough to ask for every
	// key before numbering; otherwise Log asks only for keys its window of
	// recent keys may hold, and resolves the rest when Append meets them.
	LookupAll() bool
}
