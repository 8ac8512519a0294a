package tracker

import (
	"strconv"

	"github.com/batchaudit/batchaudit/auditevent"
)

// segment groups lineages of one run in creation order; it is the unit of
// spilling and checkpointing, because the store cannot list keys.
type segment struct {
	run      *run
	n        int
	lineages []*lineage
	resident bool  // bodies are in memory
	dirty    bool  // bodies changed since last stored
	stored   bool  // a copy is in the store
	bytes    int64 // estimated size of the resident bodies
}

func (s *segment) key() string { return segKey(s.run.batchID, s.n) }

func segKey(batchID string, n int) string {
	return "seg/" + batchID + "/" + strconv.Itoa(n)
}

func runKey(batchID string) string { return "run/" + batchID }

type edgeKey struct{ src, dst int32 }

// run is the state of one batch run.
type run struct {
	batchID      string
	jobName      string
	jobNamespace string
	lastSeen     int64 // wall clock, unix nanos: drives run_timeout
	lastTime     int64 // latest event time, unix nanos

	datasets   []auditevent.Dataset
	datasetIdx map[auditevent.Dataset]int32

	lineages map[string]*lineage   // by lineage id
	byRecord map[string]*lineage   // record id -> latest lineage
	byHash   map[[32]byte]*lineage // latest output hash -> lineage
	// waiting: input record ids a join or split named before they were
	// read -> the lineages waiting for them.
	waiting map[string][]*lineage
	// byStart: the first input hash of chains begun by a step before any
	// read, for a read whose record id differs from the step's.
	byStart  map[[32]byte]*lineage
	segments []*segment

	parent string // parent batch id
	// startOnly: the run has had only batch start/progress events so far.
	startOnly bool
	// end is set once the run's batch end arrived (or, for a start-only
	// child, its parent settled): the run settles settle_time after it.
	end *runEnd

	observed  auditevent.Counters
	edges     map[edgeKey]int64
	inputs    []string
	outputs   []string
	columns   map[string]any
	dirtyMeta bool
	stored    bool // the run summary is in the store (or queued for it)

	// recent event ids, see dedupe.go
	seen      map[string]struct{}
	seenRing  [seenChunks][]string
	seenN     int   // chunks started so far; chunk c lives in slot c%seenChunks
	seenDirty []int // chunks changed since the last checkpoint
}

func newRun(batchID string) *run {
	return &run{
		batchID:    batchID,
		datasetIdx: map[auditevent.Dataset]int32{},
		lineages:   map[string]*lineage{},
		byRecord:   map[string]*lineage{},
		byHash:     map[[32]byte]*lineage{},
		edges:      map[edgeKey]int64{},
		waiting:    map[string][]*lineage{},
		byStart:    map[[32]byte]*lineage{},
		startOnly:  true,
		dirtyMeta:  true,
	}
}

// runEnd is what a run's batch end said, kept until the run settles.
type runEnd struct {
	At       int64                `json:"at"`   // clock time the end was handled
	Time     int64                `json:"time"` // the batch end's event time, unix nanos
	Result   string               `json:"result,omitempty"`
	Counters *auditevent.Counters `json:"counters,omitempty"`
	// Statistics: the counters are OpenLineage dataset statistics.
	Statistics bool `json:"statistics,omitempty"`
	// ByParent: no batch end of its own; closed because its parent ended.
	ByParent bool `json:"by_parent,omitempty"`
}

func (r *run) dataset(d auditevent.Dataset) int32 {
	if d.IsZero() {
		return -1
	}
	if i, ok := r.datasetIdx[d]; ok {
		return i
	}
	i := int32(len(r.datasets))
	r.datasets = append(r.datasets, d)
	r.datasetIdx[d] = i
	return i
}

func (r *run) note(in *Input, now int64) {
	r.lastSeen = now
	if t := in.Time.UnixNano(); !in.Time.IsZero() && t > r.lastTime {
		r.lastTime = t
	}
	if r.jobName == "" && in.JobName != "" {
		r.jobName = in.JobName
		r.dirtyMeta = true
	}
	if r.jobNamespace == "" && in.JobNamespace != "" {
		r.jobNamespace = in.JobNamespace
		r.dirtyMeta = true
	}
	if r.parent == "" && in.ParentBatchID != "" {
		r.parent = in.ParentBatchID
		r.dirtyMeta = true
	}
	if r.startOnly && in.Name != auditevent.BatchStart && in.Name != auditevent.BatchProgress {
		r.startOnly = false
		r.dirtyMeta = true
	}
}

// alias makes l findable by the job's own form of a hash the receiver
// replaced, which the job's next event names.
func (r *run) alias(l *lineage, senderHash string) {
	if senderHash != "" {
		r.byHash[hashKey(senderHash)] = l
	}
}

// index makes l findable by its record id and latest output hash.
func (r *run) index(l *lineage, recordID, hash string) {
	if recordID != "" {
		r.byRecord[recordID] = l
	}
	if hash != "" {
		k := hashKey(hash)
		if l.hasHash && l.hash != k {
			if cur := r.byHash[l.hash]; cur == l {
				delete(r.byHash, l.hash)
			}
		}
		l.hash, l.hasHash = k, true
		r.byHash[k] = l
	}
}
