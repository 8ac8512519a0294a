package testbed

import (
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"

	"github.com/batchaudit/batchaudit/canonical"
	"github.com/batchaudit/batchaudit/store/merkle"
	"github.com/batchaudit/batchaudit/store/verify"
	"github.com/batchaudit/batchaudit/testbed/harness"
)

// The tamper suite (issue 13): a trail written by the built collector with
// signed checkpoints is altered the way an insider with write access to
// the store would alter it, each time on a fresh copy, and
// `batchaudit verify --key --checkpoints` must report every alteration,
// with the right kind and, where the kind has one, the exact sequence.
// The tamperings are random (the seed is logged; BATCHAUDIT_TAMPER_SEED
// repeats a run); the backends apply them in tamper_sqlite_test.go and
// tamper_es_test.go.

// signedTrail is a trail the built collector wrote with checkpoints on.
type signedTrail struct {
	dir         string
	verifier    string // verifier key file
	signerKey   string // the collector's signer key file (to forge nothing with: tests only read it for names)
	checkpoints string // the published checkpoint file
}

// writeSignedTrail runs the example job three times (day 1, day 2, a load
// of 60 orders) and a client that resends three events with other content
// (three conflicts, kept as dead letters) and ends its run, through the built collector into
// the backend section given, signing a checkpoint every 25 entries or
// second, and stops the collector cleanly (a final checkpoint).
func writeSignedTrail(t *testing.T, dir, backend string) signedTrail {
	t.Helper()
	key, pub := signingKey(t, dir, "tamper")
	tr := signedTrail{dir: dir, verifier: pub, signerKey: key, checkpoints: filepath.Join(dir, "checkpoints.jsonl")}
	cfg := strings.Replace(pipeline, "{{EXPORTER}}", checkpointsSection(tr.checkpoints, "1s", 25, key)+backend, 1)
	c := harness.StartCollector(t, dir, harness.NewPorts(t), cfg)
	runOrdersJob(t, c, testdata("orders_day1.csv"), filepath.Join(dir, "day1.csv"), "tamper-day1")
	in := filepath.Join(dir, "load.csv")
	writeOrders(t, in, 60)
	runOrdersJob(t, c, in, filepath.Join(dir, "load_out.csv"), "tamper-load")
	conflict := func(i int, target string) map[string]any {
		return map[string]any{"event_id": fmt.Sprintf("tamper-client-%d", i), "batch_id": "tamper-client", "event_type": "record_write",
			"timestamp": fmt.Sprintf("2026-11-02T03:00:%02dZ", i), "job_name": "client", "actor": "ops",
			"target": target, "record_id": fmt.Sprintf("C-%d", i), "new_value": map[string]any{"n": i}}
	}
	for i := range 3 {
		postEvents(t, c, conflict(i, "crm.customers"))
	}
	runOrdersJob(t, c, testdata("orders_day2.csv"), filepath.Join(dir, "day2.csv"), "tamper-day2")
	for i := range 3 {
		postEvents(t, c, conflict(i, "crm.other"))
	}
	postEvents(t, c, map[string]any{"event_id": "tamper-client-end", "batch_id": "tamper-client", "event_type": "batch_end",
		"timestamp": "2026-11-02T03:00:10Z", "job_name": "client", "actor": "ops", "status": "success"})
	waitSettled(t, c)
	c.Stop()
	return tr
}

// The tampering kinds: the rows of the suite's table.
const (
	tPayload     = "payload changed"
	tPayloadHash = "payload and hash changed"
	tDelete      = "entry deleted in the middle"
	tTruncate    = "last k entries deleted"
	tAppend      = "entry added with a correct hash"
	tSwap        = "two entries swapped"
	tRun         = "run summary edited"
	tIndexed     = "search column edited"
	tCheckpoint  = "stored checkpoint replaced"
)

var tamperKinds = []string{tPayload, tPayloadHash, tDelete, tTruncate, tAppend, tSwap, tRun, tIndexed, tCheckpoint}

// Bookkeeping adjusted along with a tampering.
const (
	bkNone       = "as is"
	bkLowered    = "head lowered"              // SQLite: streams.last_sequence; Elasticsearch: the last tile's widest versions deleted
	bkRaised     = "head raised"               // SQLite: streams.last_sequence; Elasticsearch: a wider last tile added
	bkRecomputed = "stream head recomputed"    // SQLite: last_sequence and tree_root of the entries as tampered
	bkRenumbered = "later entries renumbered"  // a deletion or insertion closed up; head recomputed
	bkTiles      = "tiles and head recomputed" // a rewrite of the stored tree too (only published checkpoints tell)
)

// trailModel is what the tamperings are chosen from.
type trailModel struct {
	stream  string
	entries []modelEntry // by sequence, 1..n
	batches []string     // run summaries
	cps     []int64      // sizes of the published checkpoints, ascending
}

type modelEntry struct {
	seq     int64
	kind    merkle.Kind
	id      string // event id
	batch   string
	isEvent bool
}

func (m *trailModel) n() int64 { return int64(len(m.entries)) }

// firstCheckpoint is the size of the first checkpoint covering seq (0 if none).
func (m *trailModel) firstCheckpoint(seq int64) int64 {
	for _, c := range m.cps {
		if c >= seq {
			return c
		}
	}
	return 0
}

// tamperSpec is one tampering, chosen at random from the model.
type tamperSpec struct {
	id      int
	es      bool // on Elasticsearch (no stream counter: the tiles are the head)
	kind    string
	variant string
	seed    uint64
	seq     int64  // the entry tampered with (delete, insert, payload, column; the first of a swap)
	seq2    int64  // the second entry of a swap
	k       int64  // truncation: entries deleted from the end
	delta   int64  // counter lowered or raised by
	column  string // search column, or run summary field/column
	mode    string // run: summary, column, deleted, planted; checkpoint: forged, other-key, genuine-other, root-column
	batch   string // run
	cpSize  int64  // checkpoint
	subject string // what was done, for the failure message
}

// finding is a problem verify must report.
type finding struct {
	kind   string
	seq    int64  // 0: the kind has no sequence
	detail string // a substring of the detail, when the kind has no sequence
}

func (f finding) String() string {
	if f.seq > 0 {
		return fmt.Sprintf("%s@%d", f.kind, f.seq)
	}
	return fmt.Sprintf("%s(%s)", f.kind, f.detail)
}

// variantsOf lists the bookkeeping variants that fit a kind on a backend.
// Elasticsearch keeps no stream counter: its tiles are its bookkeeping, so
// there a tampering is also tried with the tiles lowered or raised (see
// esGroups) or rewritten.
func variantsOf(kind string, es bool) []string {
	head := []string{bkNone, bkLowered, bkRaised, bkRecomputed}
	if es {
		// Mostly as is: those share a verify (and get the tiles lowered or
		// raised there); the others run alone.
		head = []string{bkNone, bkNone, bkNone}
	}
	switch kind {
	case tPayloadHash, tSwap, tTruncate:
		return append(head, bkTiles)
	case tDelete, tAppend:
		return append(head, bkRenumbered, bkTiles)
	}
	return head
}

// specOpts shape newSpec for a backend.
type specOpts struct {
	es     bool
	maxSeq int64 // tamper with no entry beyond (0: the whole stream)
}

// newSpec picks a tampering of kind at random.
func newSpec(id int, kind string, m *trailModel, rnd *rand.Rand, o specOpts) tamperSpec {
	vs := variantsOf(kind, o.es)
	s := tamperSpec{id: id, es: o.es, kind: kind, variant: vs[rnd.IntN(len(vs))], seed: rnd.Uint64(), delta: 1 + rnd.Int64N(5)}
	n := m.n()
	top := n
	if o.maxSeq > 0 {
		top = min(n, o.maxSeq)
	}
	randomSeq := func(events bool) int64 {
		for {
			e := m.entries[rnd.Int64N(top)]
			if !events || e.isEvent {
				return e.seq
			}
		}
	}
	switch kind {
	case tPayload, tPayloadHash:
		s.seq = randomSeq(false)
	case tDelete:
		s.seq = 2 + rnd.Int64N(min(top, n-1)-1) // 2..n-1
	case tTruncate:
		s.k = 1 + rnd.Int64N(min(40, n-1))
	case tAppend:
		s.seq = n + 1
		if s.variant == bkRenumbered || (s.variant == bkTiles && rnd.IntN(2) == 0) {
			s.variant = bkRenumbered
			if rnd.IntN(3) == 0 {
				s.variant = bkTiles // an insertion, renumbered, with the tree rewritten
			}
			s.seq = 2 + rnd.Int64N(n-1) // 2..n: an insertion before an existing entry
		}
	case tSwap:
		s.seq = 1 + rnd.Int64N(top-1)
		s.seq2 = s.seq + 1
		if rnd.IntN(2) == 0 {
			for s.seq2 = randomSeq(false); s.seq2 == s.seq; s.seq2 = randomSeq(false) {
			}
		}
		s.seq, s.seq2 = min(s.seq, s.seq2), max(s.seq, s.seq2)
	case tRun:
		s.batch = m.batches[rnd.IntN(len(m.batches))]
		s.mode = []string{"summary", "summary", "column", "column", "deleted", "planted"}[rnd.IntN(6)]
		if o.es && s.mode == "column" {
			s.mode = "summary" // the run's document is its summary: what queries search
		}
	case tIndexed:
		s.seq = randomSeq(true)
	case tCheckpoint:
		s.cpSize = m.cps[rnd.IntN(len(m.cps))]
		s.mode = []string{"forged", "other-key", "genuine-other", "root-column"}[rnd.IntN(4)]
		if len(m.cps) < 2 && s.mode == "genuine-other" {
			s.mode = "forged"
		}
	}
	return s
}

// expect is what verify must report for a tampering (want) and the other
// kinds it may report along with it as consequences (allowed); anything
// else is a misclassification.
func expect(s *tamperSpec, m *trailModel) (want []finding, allowed []string) {
	n := m.n()
	entryChanging := true
	switch s.kind {
	case tPayload:
		want = []finding{{verify.Modified, s.seq, ""}}
		allowed = []string{verify.IndexedDiffers, verify.RunSummaryDiffers, verify.TreeMismatch, verify.BadDocument}
	case tPayloadHash:
		want = []finding{{verify.Modified, s.seq, ""}}
		if s.variant == bkTiles {
			want = []finding{{verify.TreeMismatch, m.firstCheckpoint(s.seq), ""}}
		}
		allowed = []string{verify.IndexedDiffers, verify.RunSummaryDiffers, verify.TreeMismatch, verify.BadDocument}
	case tDelete:
		allowed = []string{verify.TreeMismatch, verify.RunSummaryDiffers}
		switch s.variant {
		case bkRenumbered:
			want = []finding{{verify.Missing, s.seq, ""}}
			allowed = append(allowed, verify.Reordered, verify.Truncated)
		case bkTiles:
			if c := m.firstCheckpoint(s.seq); c <= n-1 {
				want = []finding{{verify.TreeMismatch, c, ""}}
			} else {
				want = []finding{{verify.Truncated, n - 1, ""}}
			}
			allowed = append(allowed, verify.Truncated)
		default:
			want = []finding{{verify.Missing, s.seq, ""}}
			// The tree has an empty place at s: no stored root can be the
			// root of the entries, however it was recomputed.
			allowed = append(allowed, verify.HeadDiffers)
		}
	case tTruncate:
		want = []finding{{verify.Truncated, n - s.k, ""}}
		allowed = []string{verify.RunSummaryDiffers}
	case tAppend:
		allowed = []string{verify.RunSummaryDiffers}
		switch {
		case s.seq == n+1:
			want = []finding{{verify.Inserted, s.seq, ""}}
		case s.variant == bkTiles:
			want = []finding{{verify.TreeMismatch, m.firstCheckpoint(s.seq), ""}}
			allowed = append(allowed, verify.Inserted)
		default:
			want = []finding{{verify.Inserted, s.seq, ""}}
			allowed = append(allowed, verify.Reordered, verify.TreeMismatch)
		}
	case tSwap:
		want = []finding{{verify.Reordered, s.seq, ""}, {verify.Reordered, s.seq2, ""}}
		if s.variant == bkTiles {
			want = []finding{{verify.TreeMismatch, m.firstCheckpoint(s.seq), ""}}
		}
		allowed = []string{verify.TreeMismatch, verify.RunSummaryDiffers}
	case tRun:
		entryChanging = false
		want = []finding{{verify.RunSummaryDiffers, 0, "run " + s.batch}}
		if s.mode == "planted" {
			want = []finding{{verify.RunSummaryDiffers, 0, "run planted-" + s.batch}}
		}
	case tIndexed:
		entryChanging = false
		want = []finding{{verify.IndexedDiffers, s.seq, ""}}
	case tCheckpoint:
		entryChanging = false
		kind := verify.ForgedCheckpoint
		if s.mode == "genuine-other" || s.mode == "root-column" {
			kind = verify.CheckpointReplaced
		}
		want = []finding{{kind, s.cpSize, ""}}
	}
	if s.variant == bkLowered || s.variant == bkRaised || (s.variant == bkNone && entryChanging) ||
		(s.es && s.variant == bkRenumbered) { // Elasticsearch's head is its tiles, not renumbered here
		allowed = append(allowed, verify.HeadDiffers)
		if s.es { // entries beyond Elasticsearch's tiles read as a write not committed yet (a note)
			allowed = append(allowed, verify.Pending)
		}
	}
	return want, allowed
}

// tamperResult is one tampering's outcome.
type tamperResult struct {
	spec     tamperSpec
	detected bool // verify failed (exit 1)
	right    bool // every wanted finding reported, nothing misclassified
	why      string
}

// judge compares verify's report on a copy altered by specs (several only
// where they cannot interact: different places, runs and checkpoints)
// with what each must give. In a group a tampering counts as detected
// when a problem names its place.
func judge(specs []tamperSpec, m *trailModel, out verifyOutput, code int) []tamperResult {
	var wants [][]finding
	var allowedAll []string
	for i := range specs {
		w, a := expect(&specs[i], m)
		wants = append(wants, w)
		allowedAll = append(allowedAll, a...)
		for _, f := range w {
			allowedAll = append(allowedAll, f.kind)
		}
	}
	var wrong []string
	for _, p := range out.Problems {
		if p.Failing() && !slices.Contains(allowedAll, p.Kind) {
			wrong = append(wrong, fmt.Sprintf("%s@%d (%s)", p.Kind, p.Sequence, p.Detail))
		}
	}
	if len(wrong) > 6 {
		wrong = append(wrong[:6], fmt.Sprintf("… %d more", len(wrong)-6))
	}
	var got []string
	for _, p := range out.Problems {
		got = append(got, fmt.Sprintf("%s@%d", p.Kind, p.Sequence))
	}
	if len(got) > 16 {
		got = append(got[:16], fmt.Sprintf("… %d more", len(got)-16))
	}
	results := make([]tamperResult, len(specs))
	for i, s := range specs {
		r := tamperResult{spec: s, detected: code == 1 && !out.OK}
		var missing []string
		named := false
		for _, w := range wants[i] {
			if !slices.ContainsFunc(out.Problems, func(p verify.Problem) bool {
				return p.Kind == w.kind && p.Sequence == w.seq && strings.Contains(p.Detail, w.detail)
			}) {
				missing = append(missing, w.String())
			}
			named = named || slices.ContainsFunc(out.Problems, func(p verify.Problem) bool {
				return p.Failing() && p.Sequence == w.seq && strings.Contains(p.Detail, w.detail)
			})
		}
		if len(specs) > 1 {
			r.detected = r.detected && named
		}
		r.right = r.detected && len(missing) == 0 && len(wrong) == 0
		if !r.right {
			r.why = fmt.Sprintf("want %v; not reported %v; misclassified %v; got %v", wants[i], missing, wrong, got)
		}
		results[i] = r
	}
	return results
}

// tamperSeed is the suite's random seed: BATCHAUDIT_TAMPER_SEED or the time.
func tamperSeed(t *testing.T) uint64 {
	if s := os.Getenv("BATCHAUDIT_TAMPER_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err)
		return v
	}
	return uint64(time.Now().UnixNano())
}

// tamperTable collects the results of both backends for the summary table.
type tamperTable struct {
	mu   sync.Mutex
	rows map[[2]string]*[3]int // (kind, backend) -> count, detected, right kind
}

func (tt *tamperTable) add(backend string, r tamperResult) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if tt.rows == nil {
		tt.rows = map[[2]string]*[3]int{}
	}
	k := [2]string{r.spec.kind, backend}
	if tt.rows[k] == nil {
		tt.rows[k] = &[3]int{}
	}
	row := tt.rows[k]
	row[0]++
	if r.detected {
		row[1]++
	}
	if r.right {
		row[2]++
	}
}

func (tt *tamperTable) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-36s %-14s %6s %9s %11s\n", "tampering", "backend", "count", "detected", "right kind")
	total := [3]int{}
	for _, kind := range tamperKinds {
		for _, backend := range []string{"sqlite", "elasticsearch"} {
			row := tt.rows[[2]string{kind, backend}]
			if row == nil {
				continue
			}
			fmt.Fprintf(&b, "%-36s %-14s %6d %9d %11d\n", kind, backend, row[0], row[1], row[2])
			for i := range total {
				total[i] += row[i]
			}
		}
	}
	fmt.Fprintf(&b, "%-36s %-14s %6d %9d %11d\n", "total", "", total[0], total[1], total[2])
	return b.String()
}

// mutateDocument changes one value of a JSON document (a string gets a
// character more, a number grows by one, a boolean flips) and returns it
// in canonical form, as an editor of the stored document would.
func mutateDocument(doc []byte, rnd *rand.Rand) ([]byte, string, error) {
	var v any
	dec := json.NewDecoder(strings.NewReader(string(doc)))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, "", err
	}
	type leaf struct {
		parent map[string]any
		key    string
	}
	var leaves []leaf
	var walk func(path string, x any)
	walk = func(path string, x any) {
		m, ok := x.(map[string]any)
		if !ok {
			return
		}
		for k, c := range m {
			switch c := c.(type) {
			case map[string]any:
				walk(path+k+".", c)
			case string:
				if _, err := time.Parse(time.RFC3339Nano, c); err == nil || (path == "" && (k == "name" || k == "span_id" || k == "trace_id")) {
					continue // keep the document readable as an event
				}
				leaves = append(leaves, leaf{m, k})
			case json.Number, bool:
				leaves = append(leaves, leaf{m, k})
			}
		}
	}
	walk("", v)
	if len(leaves) == 0 {
		return nil, "", fmt.Errorf("no value to change in %s", doc)
	}
	slices.SortFunc(leaves, func(a, b leaf) int { return strings.Compare(a.key, b.key) }) // deterministic for a seed
	l := leaves[rnd.IntN(len(leaves))]
	l.parent[l.key] = changed(l.parent[l.key])
	out, err := canonical.Marshal(v)
	return out, l.key, err
}

// changed is another value of the same type: a string with a character
// more (a time a second later, so it stays a time), a number one more, a
// boolean flipped, a list of strings with its first one changed.
func changed(v any) any {
	switch v := v.(type) {
	case string:
		if tm, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return tm.Add(time.Second).Format(time.RFC3339Nano)
		}
		return v + "x"
	case json.Number:
		f, _ := v.Float64()
		return f + 1
	case float64:
		return v + 1
	case bool:
		return !v
	case []any:
		c := slices.Clone(v)
		c[0] = changed(c[0])
		return c
	}
	panic(fmt.Sprintf("no change for %T", v))
}

// decodeJSON decodes a JSON object keeping numbers as written.
func decodeJSON(raw []byte) (map[string]any, error) {
	var v map[string]any
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	return v, dec.Decode(&v)
}

// forgeEvent is a canonical event document like doc under another event
// id: what an insider adds "with a correct hash".
func forgeEvent(doc []byte, id string) ([]byte, error) {
	v, err := decodeJSON(doc)
	if err != nil {
		return nil, err
	}
	v["attributes"].(map[string]any)["log.record.uid"] = id
	return canonical.Marshal(v)
}

// editSummary changes one field of a decoded run summary and names it.
func editSummary(v map[string]any, rnd *rand.Rand) string {
	field := []string{"read", "written", "skipped", "inserted", "deleted", "events", "findings", "status"}[rnd.IntN(8)]
	if field == "status" {
		v[field] = map[bool]string{true: "success", false: "failure"}[v[field] != "success"]
	} else {
		v[field] = changed(v[field])
	}
	return field
}

// replacedCheckpoint is the note and root (hex) a stored checkpoint of
// s.cpSize is replaced with, per s.mode: its signature altered, a
// checkpoint of another tree validly signed by a key of the same name
// (not the collector's), the genuine checkpoint of another size, or its
// root column altered.
func replacedCheckpoint(s *tamperSpec, stream, text, root string, published map[int64]string, attacker note.Signer, rnd *rand.Rand) (string, string, error) {
	switch s.mode {
	case "forged":
		i := strings.LastIndex(text, " ") + 1 + rnd.IntN(40)
		r := map[bool]string{true: "B", false: "A"}[text[i] == 'A']
		return text[:i] + r + text[i+1:], root, nil
	case "other-key":
		var other [32]byte
		_, _ = crand.Read(other[:])
		msg, err := merkle.Checkpoint{Origin: "batchaudit/" + stream, Size: s.cpSize, Root: other}.Sign(attacker)
		return string(msg), hex.EncodeToString(other[:]), err
	case "genuine-other":
		var sizes []int64
		for size := range published {
			if size != s.cpSize {
				sizes = append(sizes, size)
			}
		}
		slices.Sort(sizes)
		return published[sizes[rnd.IntN(len(sizes))]], root, nil
	case "root-column":
		return text, map[bool]string{true: "1", false: "0"}[root[0] == '0'] + root[1:], nil
	}
	return "", "", fmt.Errorf("checkpoint mode %q", s.mode)
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// treeOf is the tree an attacker recomputes over entries as tampered
// (sequence, kind, SHA-256 of the document, in sequence order): its size,
// root and every tile.
func treeOf(stream string, entries []leafOf) (int64, string, []merkle.Tile) {
	var b merkle.Builder
	for _, e := range entries {
		b.Append(merkle.LeafHash(stream, e.seq, e.kind, e.hash))
	}
	root := b.Root()
	return b.Size(), hex.EncodeToString(root[:]), b.Tiles()
}

type leafOf struct {
	seq  int64
	kind merkle.Kind
	hash string
}

// readPublished reads the published checkpoint file's notes by size.
func readPublished(t *testing.T, path string) map[int64]string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	out := map[int64]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var x struct {
			Size int64  `json:"size"`
			Note string `json:"note"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &x))
		out[x.Size] = x.Note
	}
	return out
}
