package testbed

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"

	"github.com/batchaudit/batchaudit/internal/estest"
	"github.com/batchaudit/batchaudit/store/esstore"
	"github.com/batchaudit/batchaudit/store/merkle"
)

// The tamper suite on the real Elasticsearch node. Each worker has its own
// trail (an index prefix the built collector wrote). A tampering is a set
// of document writes; after verify the touched documents are put back
// byte for byte (_source as read), so every tampering meets an untampered
// trail, and a last verify proves the trail was restored. Tamperings that
// cannot interact (other places, runs, checkpoints) share one verify;
// truncations, additions, renumberings and rewritten tiles run alone.

type docKey struct{ index, id string }

// esTrail is one worker's trail and its documents as the collector wrote them.
type esTrail struct {
	signedTrail
	prefix string
	m      *trailModel
	raw    map[docKey]json.RawMessage
	notes  map[int64]string
}

func (et *esTrail) events() string      { return esstore.EventsIndex(et.prefix) }
func (et *esTrail) deadLetters() string { return esstore.DeadLettersIndex(et.prefix) }
func (et *esTrail) runs() string        { return esstore.RunsIndex(et.prefix) }
func (et *esTrail) tiles() string       { return esstore.TilesIndex(et.prefix) }
func (et *esTrail) kept() string        { return esstore.CheckpointsIndex(et.prefix) }

// esRequest sends a request to the node and returns the body, failing on
// an HTTP error or a bulk item error.
func esRequest(method, path, contentType string, body []byte) ([]byte, error) {
	req, err := http.NewRequest(method, estest.URL()+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, b)
	}
	var r struct {
		Errors bool `json:"errors"`
	}
	if json.Unmarshal(b, &r) == nil && r.Errors {
		return nil, fmt.Errorf("%s %s: item errors: %.2000s", method, path, b)
	}
	return b, nil
}

// loadESTrail reads every document of the trail.
func loadESTrail(t *testing.T, tr signedTrail, prefix string) *esTrail {
	t.Helper()
	et := &esTrail{signedTrail: tr, prefix: prefix, raw: map[docKey]json.RawMessage{}, notes: readPublished(t, tr.checkpoints)}
	indices := strings.Join([]string{et.events(), et.deadLetters(), et.runs(), et.tiles(), et.kept()}, ",")
	_, err := esRequest(http.MethodPost, "/"+indices+"/_refresh", "application/json", nil)
	require.NoError(t, err)
	b, err := esRequest(http.MethodPost, "/"+indices+"/_search", "application/json", []byte(`{"size":10000,"query":{"match_all":{}}}`))
	require.NoError(t, err)
	var r struct {
		Hits struct {
			Hits []struct {
				Index  string          `json:"_index"`
				ID     string          `json:"_id"`
				Source json.RawMessage `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	require.NoError(t, json.Unmarshal(b, &r))
	require.Less(t, len(r.Hits.Hits), 10000)
	for _, h := range r.Hits.Hits {
		et.raw[docKey{h.Index, h.ID}] = h.Source
	}
	m := &trailModel{stream: "e2e"}
	et.m = m
	o := et.overlay()
	for _, e := range o.entries() {
		doc := o.get(e.key)
		me := modelEntry{seq: e.seq, kind: e.kind, isEvent: e.kind == merkle.KindEvent, id: str(doc, "event", "id")}
		if me.isEvent {
			me.batch = str(doc, "batchaudit", "batch", "id")
		}
		require.Equal(t, m.n()+1, me.seq, "the untampered trail is gapless")
		m.entries = append(m.entries, me)
	}
	for k := range et.raw {
		if k.index == et.runs() {
			m.batches = append(m.batches, k.id)
		}
	}
	slices.Sort(m.batches)
	for size := range et.notes {
		m.cps = append(m.cps, size)
	}
	slices.Sort(m.cps)
	return et
}

// str reads a string at a path of a decoded document.
func str(doc map[string]any, path ...string) string {
	var cur any = doc
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = m[p]
	}
	s, _ := cur.(string)
	return s
}

func decode(raw []byte) map[string]any {
	v, err := decodeJSON(raw)
	if err != nil {
		panic(err)
	}
	return v
}

// esOverlay is the trail as a tampering changes it: the documents it
// touched, nil for deleted.
type esOverlay struct {
	et  *esTrail
	cur map[docKey]map[string]any
}

func (et *esTrail) overlay() *esOverlay { return &esOverlay{et: et, cur: map[docKey]map[string]any{}} }

func (o *esOverlay) get(k docKey) map[string]any {
	if d, ok := o.cur[k]; ok {
		return d
	}
	raw, ok := o.et.raw[k]
	if !ok {
		return nil
	}
	d := decode(raw)
	o.cur[k] = d
	return d
}

func (o *esOverlay) set(k docKey, d map[string]any) { o.cur[k] = d }
func (o *esOverlay) del(k docKey)                   { o.cur[k] = nil }

// keys lists the documents of an index as they are now.
func (o *esOverlay) keys(index string) []docKey {
	var out []docKey
	for k := range o.et.raw {
		if _, touched := o.cur[k]; k.index == index && !touched {
			out = append(out, k)
		}
	}
	for k, d := range o.cur {
		if k.index == index && d != nil {
			out = append(out, k)
		}
	}
	slices.SortFunc(out, func(a, b docKey) int { return strings.Compare(a.id, b.id) })
	return out
}

type esEntry struct {
	key  docKey
	seq  int64
	kind merkle.Kind
}

// entries lists the stream's entries as they are now, by sequence.
func (o *esOverlay) entries() []esEntry {
	var out []esEntry
	for _, index := range []string{o.et.events(), o.et.deadLetters()} {
		for _, k := range o.keys(index) {
			d := o.get(k)
			if str(d, "batchaudit", "stream") != o.et.m.stream {
				continue
			}
			seq, _ := d["event"].(map[string]any)["sequence"].(json.Number).Int64()
			kind := merkle.KindEvent
			if index == o.et.deadLetters() {
				kind = merkle.Kind(str(d, "batchaudit", "entry_kind"))
			}
			out = append(out, esEntry{k, seq, kind})
		}
	}
	slices.SortFunc(out, func(a, b esEntry) int { return int(a.seq - b.seq) })
	return out
}

func (o *esOverlay) entryAt(seq int64) (docKey, map[string]any) {
	for _, e := range o.entries() {
		if e.seq == seq {
			return e.key, o.get(e.key)
		}
	}
	panic(fmt.Sprintf("no entry %d", seq))
}

func setSeq(d map[string]any, seq int64) {
	d["event"].(map[string]any)["sequence"] = json.Number(fmt.Sprint(seq))
}

// renumber moves every entry at from or later by delta.
func (o *esOverlay) renumber(from, delta int64) {
	for _, e := range o.entries() {
		if e.seq >= from {
			setSeq(o.get(e.key), e.seq+delta)
		}
	}
}

// content is the field of an entry document holding what its hash covers.
func content(k docKey, et *esTrail) (string, []string) {
	if k.index == et.events() {
		return "canonical", []string{"event", "hash"}
	}
	return "document", []string{"batchaudit", "doc_hash"}
}

func setPath(d map[string]any, v any, path ...string) {
	for _, p := range path[:len(path)-1] {
		d = d[p].(map[string]any)
	}
	d[path[len(path)-1]] = v
}

// tileDocs are the stream's tile documents as they are now.
type tileInfo struct {
	key          docKey
	level, width int
	idx          int64
	data         []byte
}

func (o *esOverlay) tileDocs() []tileInfo {
	var out []tileInfo
	for _, k := range o.keys(o.et.tiles()) {
		d := o.get(k)
		var ti tileInfo
		ti.key = k
		l, _ := d["level"].(json.Number).Int64()
		w, _ := d["width"].(json.Number).Int64()
		ti.idx, _ = d["idx"].(json.Number).Int64()
		ti.level, ti.width = int(l), int(w)
		ti.data, _ = base64.StdEncoding.DecodeString(d["data"].(string))
		out = append(out, ti)
	}
	return out
}

func (o *esOverlay) putTile(level int, idx int64, width int, data []byte) {
	o.set(docKey{o.et.tiles(), fmt.Sprintf("%s/%d/%d/%d", o.et.m.stream, level, idx, width)}, map[string]any{
		"stream": o.et.m.stream, "level": level, "idx": idx, "width": width, "data": base64.StdEncoding.EncodeToString(data)})
}

// rewriteTiles replaces every tile with the tree of the entries as they are now.
func (o *esOverlay) rewriteTiles() {
	for _, ti := range o.tileDocs() {
		o.del(ti.key)
	}
	var leaves []leafOf
	for _, e := range o.entries() {
		field, _ := content(e.key, o.et)
		leaves = append(leaves, leafOf{e.seq, e.kind, sha256Hex([]byte(str(o.get(e.key), "batchaudit", field)))})
	}
	_, _, tiles := treeOf(o.et.m.stream, leaves)
	for _, tl := range tiles {
		o.putTile(tl.L, tl.N, tl.W, tl.Data)
	}
}

// lastTile is the last level-0 tile position and its widest width.
func lastTile(tiles []tileInfo) (idx int64, width int, data []byte) {
	for _, ti := range tiles {
		if ti.level == 0 && (ti.idx > idx || (ti.idx == idx && ti.width > width)) {
			idx, width, data = ti.idx, ti.width, ti.data
		}
	}
	return idx, width, data
}

// lowerTiles deletes the widest versions of the last tile, so the stored
// tree ends delta or more leaves earlier, and returns its new size.
func (o *esOverlay) lowerTiles(delta int64) int64 {
	tiles := o.tileDocs()
	idx, width, _ := lastTile(tiles)
	rest := 0
	for _, ti := range tiles {
		switch {
		case ti.level != 0 || ti.idx != idx:
		case int64(ti.width) > int64(width)-delta:
			o.del(ti.key)
		default:
			rest = max(rest, ti.width)
		}
	}
	return idx<<merkle.TileHeight + int64(rest)
}

// raiseTiles stores a wider last tile with delta leaves that log nothing.
func (o *esOverlay) raiseTiles(delta int64, rnd *mrand.Rand) {
	idx, width, data := lastTile(o.tileDocs())
	if width == 1<<merkle.TileHeight {
		idx, width, data = idx+1, 0, nil
	}
	extra := make([]byte, 32*min(delta, int64(1<<merkle.TileHeight-width)))
	for i := range extra {
		extra[i] = byte(rnd.UintN(256))
	}
	o.putTile(0, idx, width+len(extra)/32, append(slices.Clone(data), extra...))
}

// mutateField changes one indexed field of an event document (not the
// canonical document, its hash, sequence or stream; nor event.ingested,
// the ingest time, which no hash covers) and returns its path.
func mutateField(d map[string]any, rnd *mrand.Rand) string {
	type leaf struct {
		parent map[string]any
		key    string
		path   string
	}
	var leaves []leaf
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			p := prefix + k
			switch p {
			case "batchaudit.canonical", "event.hash", "event.sequence", "batchaudit.stream", "event.ingested":
				continue
			}
			switch v := v.(type) {
			case map[string]any:
				walk(p+".", v)
			case string, json.Number, bool:
				leaves = append(leaves, leaf{m, k, p})
			case []any:
				if len(v) > 0 {
					if _, ok := v[0].(string); ok {
						leaves = append(leaves, leaf{m, k, p})
					}
				}
			}
		}
	}
	walk("", d)
	slices.SortFunc(leaves, func(a, b leaf) int { return strings.Compare(a.path, b.path) })
	l := leaves[rnd.IntN(len(leaves))]
	l.parent[l.key] = changed(l.parent[l.key])
	return l.path
}

// apply makes the tampering's changes in o.
func (et *esTrail) apply(o *esOverlay, s *tamperSpec, attacker note.Signer) error {
	rnd := mrand.New(mrand.NewPCG(s.seed, 1))
	n := et.m.n()
	switch s.kind {
	case tPayload, tPayloadHash:
		k, d := o.entryAt(s.seq)
		field, hashPath := content(k, et)
		changed, key, err := mutateDocument([]byte(str(d, "batchaudit", field)), rnd)
		if err != nil {
			return err
		}
		s.subject = fmt.Sprintf("entry %d: %s", s.seq, key)
		setPath(d, string(changed), "batchaudit", field)
		if s.kind == tPayloadHash {
			setPath(d, sha256Hex(changed), hashPath...)
		}
	case tDelete:
		s.subject = fmt.Sprintf("entry %d", s.seq)
		k, _ := o.entryAt(s.seq)
		o.del(k)
		if s.variant == bkRenumbered || s.variant == bkTiles {
			o.renumber(s.seq+1, -1)
		}
	case tTruncate:
		s.subject = fmt.Sprintf("entries %d..%d", n-s.k+1, n)
		for _, e := range o.entries() {
			if e.seq > n-s.k {
				o.del(e.key)
			}
		}
		if s.variant == bkTiles {
			for _, k := range o.keys(et.kept()) {
				if c, _ := o.get(k)["size"].(json.Number).Int64(); c > n-s.k {
					o.del(k)
				}
			}
		}
	case tAppend:
		var src int64
		for src = 1 + rnd.Int64N(n); !et.m.entries[src-1].isEvent; src = 1 + rnd.Int64N(n) {
		}
		_, d := o.entryAt(src)
		forged := decode(mustJSON(d))
		id := fmt.Sprintf("forged-%d", s.id)
		doc, err := forgeEvent([]byte(str(forged, "batchaudit", "canonical")), id)
		if err != nil {
			return err
		}
		setPath(forged, string(doc), "batchaudit", "canonical")
		setPath(forged, sha256Hex(doc), "event", "hash")
		setPath(forged, id, "event", "id")
		s.subject = fmt.Sprintf("a copy of entry %d as entry %d", src, s.seq)
		if s.seq <= n {
			o.renumber(s.seq, 1)
		}
		setSeq(forged, s.seq)
		o.set(docKey{et.events(), id}, forged)
	case tSwap:
		s.subject = fmt.Sprintf("entries %d and %d", s.seq, s.seq2)
		_, a := o.entryAt(s.seq)
		_, b := o.entryAt(s.seq2)
		setSeq(a, s.seq2)
		setSeq(b, s.seq)
	case tRun:
		k := docKey{et.runs(), s.batch}
		d := o.get(k)
		switch s.mode {
		case "summary":
			s.subject = fmt.Sprintf("run %s: %s", s.batch, editSummary(d, rnd))
		case "deleted":
			s.subject = fmt.Sprintf("run %s deleted", s.batch)
			o.del(k)
		case "planted":
			s.subject = fmt.Sprintf("run planted-%s added", s.batch)
			p := decode(mustJSON(d))
			p["batch_id"] = "planted-" + s.batch
			o.set(docKey{et.runs(), "planted-" + s.batch}, p)
		}
	case tIndexed:
		_, d := o.entryAt(s.seq)
		s.subject = fmt.Sprintf("entry %d: field %s", s.seq, mutateField(d, rnd))
	case tCheckpoint:
		d := o.get(docKey{et.kept(), fmt.Sprintf("%s/%d", et.m.stream, s.cpSize)})
		s.subject = fmt.Sprintf("checkpoint %d: %s", s.cpSize, s.mode)
		text, root, err := replacedCheckpoint(s, et.m.stream, d["note"].(string), d["root"].(string), et.notes, attacker, rnd)
		if err != nil {
			return err
		}
		d["note"], d["root"] = text, root
	}
	if s.variant == bkTiles {
		o.rewriteTiles()
	}
	return nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// write stores the overlay's documents, and puts back those the previous
// tampering (prev, may be nil) touched and this one does not, in one
// refreshed bulk request (so verify sees them).
func (o *esOverlay) write(prev *esOverlay) error {
	var b bytes.Buffer
	put := func(k docKey, src []byte) {
		fmt.Fprintf(&b, `{"index":{"_index":%q,"_id":%q}}`+"\n", k.index, k.id)
		b.Write(src)
		b.WriteByte('\n')
	}
	del := func(k docKey) { fmt.Fprintf(&b, `{"delete":{"_index":%q,"_id":%q}}`+"\n", k.index, k.id) }
	if prev != nil {
		for k := range prev.cur {
			if _, again := o.cur[k]; again {
				continue
			}
			if raw, ok := o.et.raw[k]; ok {
				put(k, raw)
			} else {
				del(k)
			}
		}
	}
	for k, d := range o.cur {
		if d != nil {
			put(k, mustJSON(d))
			continue
		}
		exists := o.et.raw[k] != nil
		if pd, touched := prev.touched(k); touched {
			exists = pd != nil
		}
		if exists {
			del(k)
		}
	}
	if b.Len() == 0 {
		return nil
	}
	_, err := esRequest(http.MethodPost, "/_bulk?refresh=true", "application/x-ndjson", b.Bytes())
	return err
}

func (o *esOverlay) touched(k docKey) (map[string]any, bool) {
	if o == nil {
		return nil, false
	}
	d, ok := o.cur[k]
	return d, ok
}

// esJob is one verify: tamperings that cannot interact, sharing the tiles
// lowered or raised by delta (or as is); or one that runs alone.
type esJob struct {
	specs []tamperSpec
	tiles string
	delta int64
}

// places is what a tampering touches, for grouping.
func places(s *tamperSpec, m *trailModel) (seqs []int64, batches []string, cp int64) {
	switch s.kind {
	case tRun:
		return nil, []string{s.batch, "planted-" + s.batch}, 0
	case tCheckpoint:
		return nil, nil, s.cpSize
	case tSwap:
		seqs = []int64{s.seq, s.seq2}
	default:
		seqs = []int64{s.seq}
	}
	for _, q := range seqs {
		if b := m.entries[q-1].batch; b != "" {
			batches = append(batches, b)
		}
	}
	return seqs, batches, 0
}

// esJobs makes quota tamperings of each kind and deals them into jobs:
// additions, truncations and rewrites alone, the others up to ten to a
// job, at places far enough apart (and runs other than the tampered
// entries' runs) that each finding names the tampering it comes from.
func esJobs(et *esTrail, quota map[string]int, rnd *mrand.Rand, firstID int) []esJob {
	m := et.m
	var jobs []esJob
	var simple []tamperSpec
	id := firstID
	for _, kind := range tamperKinds {
		for range quota[kind] {
			s := newSpec(id, kind, m, rnd, specOpts{es: true})
			id++
			if kind == tTruncate || kind == tAppend || s.variant != bkNone {
				jobs = append(jobs, esJob{specs: []tamperSpec{s}, tiles: bkNone})
			} else {
				simple = append(simple, s)
			}
		}
	}
	rnd.Shuffle(len(simple), func(i, j int) { simple[i], simple[j] = simple[j], simple[i] })
	for len(simple) > 0 {
		g := esJob{tiles: []string{bkNone, bkNone, bkLowered, bkRaised}[rnd.IntN(4)], delta: 1 + rnd.Int64N(5)}
		extent := m.n()
		if g.tiles == bkLowered {
			extent = et.overlay().lowerTiles(g.delta) // only computed here; applied per job
		}
		seen := map[int64]bool{}
		var runBatches, entryBatches []string // a run's finding must come from its tampering
		var cps []int64
		var rest []tamperSpec
		for _, s := range simple {
			seqs, bs, cp := places(&s, m)
			ok := len(g.specs) < 10 && (cp == 0 || !slices.Contains(cps, cp))
			for _, q := range seqs {
				// An entry whose tile is deleted too is found only to a
				// checkpoint: the rewritten-tiles variant covers that.
				ok = ok && q <= extent
				for d := int64(-3); d <= 3; d++ {
					ok = ok && !seen[q+d]
				}
			}
			for _, b := range bs {
				ok = ok && !slices.Contains(runBatches, b) && (s.kind != tRun || !slices.Contains(entryBatches, b))
			}
			if !ok {
				rest = append(rest, s)
				continue
			}
			for _, q := range seqs {
				seen[q] = true
			}
			if s.kind == tRun {
				runBatches = append(runBatches, bs...)
			} else {
				entryBatches = append(entryBatches, bs...)
			}
			cps = append(cps, cp)
			s.variant = g.tiles
			g.specs = append(g.specs, s)
		}
		if len(g.specs) > 0 {
			jobs = append(jobs, g)
		}
		simple = rest
	}
	return jobs
}

// TestTamperElasticsearch tampers with trails the built collector wrote
// into the real Elasticsearch node and checks that verify reports each
// tampering with its kind and sequence, and nothing once it is undone.
func TestTamperElasticsearch(t *testing.T) {
	began := time.Now()
	client := estest.Require(t)
	const workers = 2
	trails := make([]*esTrail, workers)
	for w := range trails {
		prefix := estest.UniqueName(t, "tamper")
		estest.TrackStore(t, client, prefix+"-*", esstore.Indices(prefix)...)
		dir := t.TempDir()
		tr := writeSignedTrail(t, dir, fmt.Sprintf("    elasticsearch:\n      endpoints: [%s]\n      index_prefix: %s\n", estest.URL(), prefix))
		requireIntact(t, tr.verifier, tr.checkpoints, "--es", estest.URL(), "--es-prefix", prefix)
		trails[w] = loadESTrail(t, tr, prefix)
	}
	written := time.Since(began)
	sk, _, err := note.GenerateKey(rand.Reader, "batchaudit-test/tamper")
	require.NoError(t, err)
	attacker, err := note.NewSigner(sk)
	require.NoError(t, err)

	seed := tamperSeed(t)
	per := tamperCount(t, "BATCHAUDIT_TAMPER_ES", 160) // per worker
	var mu sync.Mutex
	var results []tamperResult
	var wg sync.WaitGroup
	for w, et := range trails {
		rnd := mrand.New(mrand.NewPCG(seed, uint64(w)+1))
		quota := map[string]int{}
		for i, k := range tamperKinds {
			quota[k] = per / len(tamperKinds)
			if i < per%len(tamperKinds) {
				quota[k]++
			}
		}
		// Truncations and additions run alone: fewer of them, more of the rest.
		for _, k := range []string{tTruncate, tAppend} {
			moved := quota[k] / 2
			quota[k] -= moved
			quota[tamperKinds[rnd.IntN(3)]] += moved
		}
		jobs := esJobs(et, quota, rnd, w*100000)
		t.Logf("worker %d: trail %s of %d entries, checkpoints %v, %d verifies", w, et.prefix, et.m.n(), et.m.cps, len(jobs))
		wg.Go(func() {
			var prev *esOverlay
			for _, job := range jobs {
				o := et.overlay()
				var err error
				for i := range job.specs {
					if err == nil {
						err = et.apply(o, &job.specs[i], attacker)
					}
				}
				switch job.tiles {
				case bkLowered:
					o.lowerTiles(job.delta)
				case bkRaised:
					o.raiseTiles(job.delta, mrand.New(mrand.NewPCG(job.specs[0].seed, 2)))
				}
				var rs []tamperResult
				if err == nil {
					if err := o.write(prev); err != nil {
						t.Errorf("write tampering: %v", err)
						return
					}
					prev = o
					out, code := runVerify(t, et.verifier, et.checkpoints, "--es", estest.URL(), "--es-prefix", et.prefix)
					rs = judge(job.specs, et.m, out, code)
				} else {
					for _, s := range job.specs {
						rs = append(rs, tamperResult{spec: s, why: "apply: " + err.Error()})
					}
				}
				mu.Lock()
				results = append(results, rs...)
				mu.Unlock()
			}
			if prev != nil {
				if err := et.overlay().write(prev); err != nil {
					t.Errorf("restore: %v", err)
				}
			}
		})
	}
	wg.Wait()
	for _, et := range trails {
		requireIntact(t, et.verifier, et.checkpoints, "--es", estest.URL(), "--es-prefix", et.prefix)
	}
	t.Logf("tamper seed %d (BATCHAUDIT_TAMPER_SEED repeats it)", seed)
	slices.SortFunc(results, func(a, b tamperResult) int { return a.spec.id - b.spec.id })
	reportTamper(t, "elasticsearch", results, written, time.Since(began))
}
