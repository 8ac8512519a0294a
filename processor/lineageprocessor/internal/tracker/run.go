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

// idList keeps the first ids of a finding and the total count.
type idList struct {
	IDs   []string `json:"ids,omitempty"`
	Total int64    `json:"total"`
}

func (l *idList) add(id string, limit int) {
	l.Total++
	if len(l.IDs) < limit {
		l.IDs = append(l.IDs, id)
	}
}

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
	segments []*segment

	observed  auditevent.Counters
	edges     map[edgeKey]int64
	noRead    idList
	breaks    idList
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
		dirtyMeta:  true,
	}
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
