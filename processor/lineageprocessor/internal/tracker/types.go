// Package tracker follows records through batch runs: it builds record
// lineage chains, dataset edges and data-loss findings from audit events, and
// keeps its state bounded in memory by spilling chain bodies to a key-value
// store. It knows nothing about pdata; the processor feeds it Inputs.
package tracker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"go.opentelemetry.io/collector/extension/xextension/storage"

	"github.com/batchaudit/batchaudit/auditevent"
)

// DerivedBy is the batchaudit.derived_by value of every event the tracker emits.
const DerivedBy = "lineageprocessor"

// Input is the part of one audit event the tracker needs.
type Input struct {
	Name         string
	EventID      string // log.record.uid: deduplicates redelivered events
	Time         time.Time
	BatchID      string
	JobName      string
	JobNamespace string

	RecordID   string
	LineageID  string
	RecordHash string
	// SenderHash is the record hash as the job sent it, when the receiver
	// replaced it with the canonical hash (batchaudit.record.sender_hash):
	// the job's next step names this one as its input.
	SenderHash     string
	InputHash      string
	InputRecordIDs []string
	Source         auditevent.Dataset
	Target         auditevent.Dataset

	StepName    string
	StepType    string
	StepSubtype string
	StepSeq     int64
	StepParams  string // canonical JSON of the params map, "" when none

	Counters      *auditevent.Counters
	Inputs        []string
	Outputs       []string
	ColumnLineage map[string]any

	ParentBatchID string
	Result        string // batch end result
	// OpenLineage is set for events derived from OpenLineage: their
	// counters are dataset statistics, not record accounting.
	OpenLineage bool
}

// Store is the subset of the collector storage client the tracker uses.
type Store interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Set(ctx context.Context, key string, value []byte) error
	Delete(ctx context.Context, key string) error
	Batch(ctx context.Context, ops ...*storage.Operation) error
}

// Hooks receive telemetry; any may be nil.
type Hooks struct {
	Completed    func(n int64)
	Finding      func(findingType string)
	Spilled      func(lineages int64)
	Evicted      func(lineages int64)
	Reloaded     func(lineages int64)
	StorageError func(op string, err error)
	Late         func()
	// Duplicate counts events already handled (same id in the run).
	Duplicate func()
}

// Config bounds the tracker.
type Config struct {
	// RunTimeout expires runs with no event for this long.
	RunTimeout time.Duration
	// SettleTime is how long after its batch end (and its last event) a
	// run's record-level findings wait for events still on their way (a
	// job's requests may arrive in any order). 0 decides at the batch end.
	SettleTime time.Duration
	// MaxResidentLineages and MemoryLimitBytes bound the chain bodies held
	// in memory; beyond either, the oldest segments are spilled to Store
	// (or, without a Store, evicted and their chains marked truncated).
	MaxResidentLineages int
	MemoryLimitBytes    int64
	// MaxFindingIDs caps the record ids listed on one finding.
	MaxFindingIDs int
	// SegmentSize is how many lineages share one storage value.
	SegmentSize int
	// MaxClosedRuns is how many settled runs keep their derived events in
	// memory, so that a redelivered batch end re-emits them (and their
	// finding summaries, read from Store for older runs).
	MaxClosedRuns int
	// SettledRetention is how long after a run settled the summary of its
	// findings is kept (in Store), so that a late record event is checked
	// against them (settled.go). Default 24h.
	SettledRetention time.Duration
	Store            Store
	Hooks            Hooks
	// Now is the clock of every time decision (run_timeout, settle time);
	// it defaults to the wall clock. Nothing else in the tracker reads the
	// time, so a caller that replays events with their recorded times
	// gets the same decisions.
	Now func() time.Time
}

// lineage states.
const (
	stateOpen uint8 = iota
	stateWritten
	stateSkipped
	stateErrored
	stateConsumed // merged or split into other lineages
)

// lineage flags.
const (
	flagRead    uint8 = 1 << iota // started by a read event
	flagEmitted                   // a lineage record was emitted for it
	flagBroken                    // its chain has a checksum break
	flagCounted                   // counted as completed
	flagPending                   // written before its start was known: the write waits in body.pending
	flagDerived                   // a new record made by a join or split: it starts at its parents, not at a read
)

// lineage is the always-resident index entry of one chain. Its body (the
// chain itself) may be spilled to the store with its segment.
type lineage struct {
	key      string // the lineage id
	recordID string
	hash     [32]byte // key of the latest output hash, for hash matching
	hasHash  bool
	state    uint8
	flags    uint8
	src      int32 // index into run.datasets of the source, -1 when none
	seg      *segment
	body     *body
}

type hop struct {
	namespace, name, recordID, hash string
	time                            int64
}

type step struct {
	name, typ, subtype, params, inHash, outHash string
	// outAlt is the job's own form of outHash, when the receiver replaced
	// it with the canonical one (see Input.SenderHash).
	outAlt    string
	seq, time int64
	multi     bool // a join of several inputs: its input hash is not one chain's
}

type body struct {
	source     hop
	startHash  string // the hash the first step must consume
	startAlt   string // the job's own form of startHash, if it differs
	steps      []step
	parents    []string
	unresolved []string
	truncated  bool // evicted without a store: steps were lost
	// writeHash is the input hash of the latest write, kept so the chain
	// can be verified again when a step arrives after the write.
	writeHash string
	// pending are writes that arrived before the lineage's read (or
	// parent): their lineage records are emitted when it arrives, or when
	// the run settles.
	pending []hop
}

// size estimates the heap bytes of a body, for the memory budget.
func (b *body) size() int64 {
	n := int64(160) + int64(len(b.source.namespace)+len(b.source.name)+len(b.source.recordID)+len(b.source.hash)+len(b.startHash))
	for i := range b.steps {
		s := &b.steps[i]
		n += 112 + int64(len(s.name)+len(s.typ)+len(s.subtype)+len(s.params)+len(s.inHash)+len(s.outHash)+len(s.outAlt))
	}
	for _, p := range b.parents {
		n += 16 + int64(len(p))
	}
	for _, p := range b.unresolved {
		n += 16 + int64(len(p))
	}
	n += int64(len(b.writeHash) + len(b.startAlt))
	for _, p := range b.pending {
		n += 80 + int64(len(p.namespace)+len(p.name)+len(p.recordID)+len(p.hash))
	}
	return n
}

// hashKey maps a hash string to a fixed-size map key: SHA-256 hex is decoded,
// anything else (other algorithms) is hashed.
func hashKey(h string) [32]byte {
	var k [32]byte
	if len(h) == 64 {
		if _, err := hex.Decode(k[:], []byte(h)); err == nil {
			return k
		}
	}
	return sha256.Sum256([]byte(h))
}
