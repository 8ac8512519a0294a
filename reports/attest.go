package reports

import (
	"cmp"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/merkle"
)

// Attestation is the integrity section of a report: per stream of the
// trail, the signed Merkle checkpoint that covers every entry up to the
// period's end, and the RFC 6962 consistency proof from the checkpoint the
// previous report of the series used (docs/reports.md, "Integrity
// attestation"). What it says depends only on the trail and the report
// index, so it is part of the content hash; Verification, which depends on
// the keys the generator was given, is not.
type Attestation struct {
	// Status is covered, not_covered, inconsistent or empty (the worst of
	// the streams').
	Status    string `json:"status"`
	Statement string `json:"statement"`
	// Rule says how the checkpoint and the previous report are chosen.
	Rule string `json:"rule"`
	// Previous is the previous report of the series, if one is recorded.
	Previous *PreviousReport     `json:"previous_report,omitempty"`
	Streams  []StreamAttestation `json:"streams"`
	// Verification is the generator's check of the checkpoints' signatures
	// and origins; outside the content hash.
	Verification SignatureCheck `json:"verification"`
}

// Attestation statuses.
const (
	// AttestationCovered: every stream's entries up to the period's end are
	// in a signed checkpoint, consistent with the previous report's.
	AttestationCovered = "covered"
	// AttestationNotCovered: some stream has no kept checkpoint that covers
	// them yet (or none at all).
	AttestationNotCovered = "not_covered"
	// AttestationInconsistent: a checkpoint does not match the stored tree,
	// or the log was rewritten since the previous report's checkpoint.
	AttestationInconsistent = "inconsistent"
	// AttestationEmpty: no entry of the trail is before the period's end.
	AttestationEmpty = "empty"
)

// Verification statuses.
const (
	VerificationVerified    = "verified"
	VerificationNotVerified = "not_verified"
	VerificationFailed      = "failed"
)

// attestationRule is written into every attestation.
const attestationRule = "Per stream, the entries up to the period's end are entries 1..N, N being the highest " +
	"sequence number of an event or dead letter whose time is before period_to (gap entries, which hold no event, are left out whatever their time). " +
	"The checkpoint is the first kept checkpoint (the smallest tree) of at least N entries, so a closed period " +
	"always gets the same one. The previous report is the recorded report of the same kind and filters (and " +
	"schedule, when the report belongs to one) whose period ends last, no later than this one's, other than this " +
	"period; the consistency proof (RFC 6962, from the stored tiles) goes from the smaller of its checkpoint and " +
	"this one to the larger."

// PreviousReport names the report whose checkpoints the consistency proofs
// start from.
type PreviousReport struct {
	// ID is its id in the report index ("<schedule>/<report id>" for a
	// scheduled report).
	ID            string    `json:"id"`
	From          time.Time `json:"period_from"`
	To            time.Time `json:"period_to"`
	ContentSHA256 string    `json:"content_sha256"`
}

// StreamAttestation is the attestation of one stream (audit log).
type StreamAttestation struct {
	Stream string `json:"stream"`
	// Entries is N: entries 1..N hold everything of the stream stored with
	// a time before the period's end.
	Entries   int64  `json:"entries"`
	Status    string `json:"status"`
	Statement string `json:"statement"`
	// Checkpoint is the first kept checkpoint of at least Entries entries.
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`
	// Previous is the checkpoint of this stream the previous report used;
	// ConsistencyProof proves the smaller of the two trees a prefix of the
	// larger (empty when they have the same size).
	Previous         *Checkpoint `json:"previous_checkpoint,omitempty"`
	ConsistencyProof []string    `json:"consistency_proof,omitempty"`
}

// Checkpoint is a signed tree head of a stream's log (c2sp.org/tlog-checkpoint).
type Checkpoint struct {
	Origin   string `json:"origin"`
	TreeSize int64  `json:"tree_size"`
	// RootHash is base64, as in the note.
	RootHash string `json:"root_hash"`
	// Note is the whole signed note, verbatim: verifiable on its own.
	Note string `json:"note"`
}

// SignatureCheck is what the generator checked of the checkpoints'
// signatures.
type SignatureCheck struct {
	// Status is verified, not_verified (no key given, or nothing to check)
	// or failed.
	Status    string   `json:"status"`
	Keys      []string `json:"keys,omitempty"`
	Statement string   `json:"statement"`
}

// DefaultOriginPrefix is the audit exporter's checkpoints::origin_prefix:
// the checkpoint origin of stream S is "batchaudit/S".
const DefaultOriginPrefix = "batchaudit/"

// errTiles wraps a failure to read the stored tiles: an error of the read,
// not evidence about the log.
var errTiles = errors.New("reading the stored tiles")

// tileReader remembers whether the store failed to read, so that a failed
// proof is told apart from a failed read.
type tileReader struct {
	tlog.TileReader
	err error
}

func (r *tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	data, err := r.TileReader.ReadTiles(tiles)
	if err != nil && r.err == nil {
		r.err = err
	}
	return data, err
}

// checked runs a proof step: a failed read is an error, any other failure
// is an inconsistency (described by the returned text).
func (r *tileReader) checked(err error) (string, error) {
	switch {
	case err == nil:
		return "", nil
	case r.err != nil:
		return "", fmt.Errorf("%w: %v", errTiles, r.err)
	}
	return err.Error(), nil
}

// attest fills the report's attestation.
func (b *builder) attest() error {
	b.progress("attesting the period's end with signed checkpoints")
	src := b.g.Source
	a := &b.rep.Attestation
	*a = Attestation{Rule: attestationRule, Streams: []StreamAttestation{}}
	streams, err := src.Streams(b.ctx)
	if err != nil {
		return fmt.Errorf("reports: attestation: streams: %w", err)
	}
	prev, err := b.previousReport()
	if err != nil {
		return err
	}
	prevCPs := map[string]store.ReportCheckpoint{}
	if prev != nil {
		a.Previous = &PreviousReport{ID: prev.ID, From: prev.From.UTC(), To: prev.To.UTC(), ContentSHA256: prev.ContentSHA256}
		for _, c := range prev.Checkpoints {
			prevCPs[c.Stream] = c
		}
	}
	for _, st := range streams {
		n, err := src.LastSequenceBefore(b.ctx, st, b.req.To)
		if err != nil {
			return fmt.Errorf("reports: attestation: %w", err)
		}
		if n == 0 {
			continue // nothing of this stream is before the period's end
		}
		sa := StreamAttestation{Stream: st, Entries: n}
		pc, hasPrev := prevCPs[st]
		var pcp *store.ReportCheckpoint
		if hasPrev {
			pcp = &pc
		}
		if err := b.attestStream(&sa, pcp, prev != nil); err != nil {
			return fmt.Errorf("reports: attestation of stream %s: %w", st, err)
		}
		a.Streams = append(a.Streams, sa)
	}
	a.Status, a.Statement = summarize(a)
	a.Verification = verifyCheckpoints(a, b.g.CheckpointKeys, b.g.originPrefix())
	return nil
}

func (g *Generator) originPrefix() string {
	if g.OriginPrefix == "" {
		return DefaultOriginPrefix
	}
	return g.OriginPrefix
}

// previousReport looks the previous report of the series up in the report
// index (attestationRule).
func (b *builder) previousReport() (*store.ReportRecord, error) {
	recs, err := b.g.Source.Reports(b.ctx, store.ReportQuery{Kind: b.req.Kind, Schedule: b.req.Schedule, To: b.req.To})
	if err != nil {
		return nil, fmt.Errorf("reports: attestation: the report index: %w", err)
	}
	filters := b.rep.Envelope.Filters.String()
	var best *store.ReportRecord
	for i := range recs {
		r := &recs[i]
		if r.Kind != b.req.Kind || r.Filters != filters || (b.req.Schedule != "" && r.Schedule != b.req.Schedule) ||
			r.To.After(b.req.To) || (r.From.Equal(b.req.From) && r.To.Equal(b.req.To)) {
			continue
		}
		if best == nil || cmp.Or(r.To.Compare(best.To), r.From.Compare(best.From), strings.Compare(r.ID, best.ID)) > 0 {
			best = r
		}
	}
	return best, nil
}

// attestStream chooses the checkpoint of one stream and proves it against
// the stored tree and the previous report's checkpoint.
func (b *builder) attestStream(sa *StreamAttestation, prev *store.ReportCheckpoint, hasPrevReport bool) error {
	src := b.g.Source
	cps, err := src.Checkpoints(b.ctx, sa.Stream)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(cps, func(c store.StoredCheckpoint) bool { return c.Size >= sa.Entries })
	if i < 0 {
		sa.Status = AttestationNotCovered
		if len(cps) == 0 {
			sa.Statement = fmt.Sprintf("Not covered: stream %s has no kept checkpoint, so nothing signed covers its "+
				"entries 1..%d (is the audit exporter's checkpoints::key_files set?).", sa.Stream, sa.Entries)
		} else {
			sa.Statement = fmt.Sprintf("Not covered yet: no kept checkpoint of stream %s covers its entries 1..%d; the "+
				"latest is of size %d. Generate the report again after the collector's next checkpoint.",
				sa.Stream, sa.Entries, cps[len(cps)-1].Size)
		}
		return nil
	}
	kept := cps[i]
	cp, err := merkle.ParseBody(merkle.Text(kept.Note))
	if err != nil {
		sa.Status, sa.Statement = AttestationInconsistent, fmt.Sprintf("Inconsistent: the checkpoint kept "+
			"as size %d of stream %s cannot be read: %v.", kept.Size, sa.Stream, err)
		return nil
	}
	sa.Checkpoint = checkpointOf(cp, kept.Note)
	if cp.Size != kept.Size {
		sa.Status, sa.Statement = AttestationInconsistent, fmt.Sprintf("Inconsistent: the checkpoint kept "+
			"as size %d of stream %s signs size %d.", kept.Size, sa.Stream, cp.Size)
		return nil
	}
	head, err := src.Head(b.ctx, sa.Stream)
	if err != nil {
		return err
	}
	tiles := &tileReader{TileReader: head.Tiles}
	var proven *merkle.Checkpoint
	if prev != nil {
		p, err := merkle.ParseBody(merkle.Text(prev.Note))
		if err != nil {
			sa.Status, sa.Statement = AttestationInconsistent, fmt.Sprintf("Inconsistent: the checkpoint the "+
				"previous report recorded for stream %s cannot be read: %v.", sa.Stream, err)
			return nil
		}
		sa.Previous, proven = checkpointOf(p, prev.Note), &p
	}
	// The larger tree must still be stored: its tiles prove both.
	large := cp
	if proven != nil && proven.Size > cp.Size {
		large = *proven
	}
	if head.Size < large.Size {
		sa.Status, sa.Statement = AttestationInconsistent, fmt.Sprintf("Inconsistent: stream %s stores a tree of %d "+
			"entries, but a signed checkpoint covers %d: entries were removed.", sa.Stream, head.Size, large.Size)
		return nil
	}
	r := tlog.TileHashReader(large.Tree(), tiles)
	if proven == nil {
		// Without a previous checkpoint, the stored tiles must still give
		// this checkpoint's root.
		_, err := tlog.TreeHash(cp.Size, r)
		bad, err := tiles.checked(err)
		if err != nil {
			return err
		}
		if bad != "" {
			sa.Status, sa.Statement = AttestationInconsistent, fmt.Sprintf("Inconsistent: the stored tree of stream %s "+
				"does not give the root the checkpoint of size %d signs (%s).", sa.Stream, cp.Size, bad)
			return nil
		}
		sa.Status = AttestationCovered
		sa.Statement = coveredText(sa)
		if hasPrevReport {
			sa.Statement += " The previous report had no checkpoint of this stream, so there is no consistency proof."
		} else {
			sa.Statement += " No previous report of this series is recorded, so there is no consistency proof."
		}
		return nil
	}
	small := *proven
	if small.Size > cp.Size {
		small = cp
	}
	if small.Size == large.Size {
		if small.Root != large.Root {
			sa.Status, sa.Statement = AttestationInconsistent, fmt.Sprintf("Inconsistent: the previous report's "+
				"checkpoint and this one both sign %d entries of stream %s, with different roots: the log was rewritten.",
				small.Size, sa.Stream)
			return nil
		}
		sa.Status = AttestationCovered
		sa.Statement = coveredText(sa) + " It is the checkpoint the previous report used (same size and root)."
		return nil
	}
	proof, err := tlog.ProveTree(large.Size, small.Size, r)
	bad, err := tiles.checked(err)
	if err != nil {
		return err
	}
	if bad == "" {
		if err := tlog.CheckTree(proof, large.Size, large.Root, small.Size, small.Root); err != nil {
			bad = err.Error()
		}
	}
	if bad != "" {
		sa.Status, sa.Statement = AttestationInconsistent, fmt.Sprintf("Inconsistent: the checkpoints of size %d and %d "+
			"of stream %s cannot both hold: the log was rewritten between them (%s).", small.Size, large.Size, sa.Stream, bad)
		return nil
	}
	for _, h := range proof {
		sa.ConsistencyProof = append(sa.ConsistencyProof, base64.StdEncoding.EncodeToString(h[:]))
	}
	sa.Status = AttestationCovered
	if small.Size == cp.Size {
		// Only if the kept checkpoints changed since the previous report
		// chose its own.
		sa.Statement = coveredText(sa) + fmt.Sprintf(" The previous report used a larger checkpoint (size %d); the "+
			"consistency proof (%d hashes) shows this one is a prefix of it.", large.Size, len(proof))
		return nil
	}
	sa.Statement = coveredText(sa) + fmt.Sprintf(" The consistency proof (%d hashes) shows that the tree of %d entries "+
		"the previous report attested is a prefix of this one: nothing it covered was changed since.", len(proof), small.Size)
	return nil
}

func coveredText(sa *StreamAttestation) string {
	return fmt.Sprintf("Covered: entries 1..%d of stream %s are everything stored with a time before the period's "+
		"end, and the signed checkpoint of size %d covers them; the stored tiles give its root.",
		sa.Entries, sa.Stream, sa.Checkpoint.TreeSize)
}

func checkpointOf(c merkle.Checkpoint, note string) *Checkpoint {
	return &Checkpoint{Origin: c.Origin, TreeSize: c.Size, RootHash: base64.StdEncoding.EncodeToString(c.Root[:]), Note: note}
}

// summarize gives the attestation's status (the worst of its streams') and
// statement.
func summarize(a *Attestation) (string, string) {
	if len(a.Streams) == 0 {
		return AttestationEmpty, "Empty: the trail holds no entry with a time before the period's end, so there is " +
			"nothing to attest."
	}
	count := map[string]int{}
	for _, s := range a.Streams {
		count[s.Status]++
	}
	n := len(a.Streams)
	switch {
	case count[AttestationInconsistent] > 0:
		return AttestationInconsistent, fmt.Sprintf("INCONSISTENT: for %d of %d stream(s) the signed checkpoints and "+
			"the stored log disagree (see below): the trail was altered. Run `batchaudit verify` to locate the change; "+
			"the numbers of this report cannot be relied on.", count[AttestationInconsistent], n)
	case count[AttestationNotCovered] > 0:
		return AttestationNotCovered, fmt.Sprintf("Not covered: %d of %d stream(s) have no kept checkpoint covering "+
			"the period's end yet, so for them this report rests on the store alone (per-event hashes and sequences, "+
			"checked by `batchaudit verify`). Generating the report again after the collector signs its next "+
			"checkpoint gives the attestation (and another content hash).", count[AttestationNotCovered], n)
	}
	s := fmt.Sprintf("Covered: for each of the %d stream(s), every entry up to the period's end is in a signed "+
		"checkpoint that matches the stored tree", n)
	if a.Previous != nil {
		s += fmt.Sprintf(", and the log only grew since the checkpoints of the previous report %s", a.Previous.ID)
	}
	return AttestationCovered, s + "."
}

// verifyCheckpoints checks every checkpoint of the attestation with the
// verifier keys: a signature by one of them and the origin of its stream.
func verifyCheckpoints(a *Attestation, keys []note.Verifier, originPrefix string) SignatureCheck {
	problems, checked := checkSignatures(a, keys, originPrefix)
	if len(keys) == 0 {
		return SignatureCheck{Status: VerificationNotVerified, Statement: "The checkpoints' signatures were not " +
			"verified: no checkpoint verifier key was given. Check them with `batchaudit verify-report " +
			"--checkpoint-key KEY`."}
	}
	v := SignatureCheck{Keys: keyNames(keys)}
	switch {
	case len(problems) > 0:
		v.Status = VerificationFailed
		v.Statement = "FAILED: " + strings.Join(problems, "; ") + "."
	case checked == 0:
		v.Status, v.Statement = VerificationNotVerified, "There is no checkpoint to verify."
	default:
		v.Status = VerificationVerified
		v.Statement = fmt.Sprintf("The %d checkpoint(s) above are signed by %s, with the origin %s<stream>.",
			checked, strings.Join(v.Keys, " or "), originPrefix)
	}
	return v
}

// checkSignatures checks the notes of every checkpoint in a with the keys
// (none: only counts them) and returns the problems and how many notes
// were checked.
func checkSignatures(a *Attestation, keys []note.Verifier, originPrefix string) (problems []string, checked int) {
	for _, s := range a.Streams {
		for _, c := range []struct {
			what string
			cp   *Checkpoint
		}{{"checkpoint", s.Checkpoint}, {"previous checkpoint", s.Previous}} {
			if c.cp == nil {
				continue
			}
			checked++
			if len(keys) == 0 {
				continue
			}
			got, _, err := merkle.Open([]byte(c.cp.Note), note.VerifierList(keys...))
			switch {
			case err != nil:
				problems = append(problems, fmt.Sprintf("stream %s: the %s of size %d: %v", s.Stream, c.what, c.cp.TreeSize, err))
			case got.Origin != originPrefix+s.Stream:
				problems = append(problems, fmt.Sprintf("stream %s: the %s of size %d has origin %q, want %q",
					s.Stream, c.what, c.cp.TreeSize, got.Origin, originPrefix+s.Stream))
			}
		}
	}
	return problems, checked
}

func keyNames(keys []note.Verifier) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.Name()
	}
	return out
}

// AttestationCheck is what VerifyAttestation found.
type AttestationCheck struct {
	// Status is the report's attestation status.
	Status string
	// Signatures is verified or not_verified (no keys given).
	Signatures string
	// Streams holds one line per stream saying what was checked.
	Streams []string
}

// VerifyAttestation checks a report's attestation offline, from the report
// alone: each checkpoint's fields match its signed note and its tree covers
// the stream's entries up to the period's end; with keys, every note is
// signed by one of them with the stream's origin; each consistency proof
// proves the previous checkpoint's tree a prefix of the larger one. A
// report whose attestation records an inconsistency fails too.
func VerifyAttestation(a *Attestation, keys []note.Verifier, originPrefix string) (*AttestationCheck, error) {
	if originPrefix == "" {
		originPrefix = DefaultOriginPrefix
	}
	res := &AttestationCheck{Status: a.Status, Signatures: VerificationNotVerified}
	var problems []string
	worst := AttestationEmpty
	if len(a.Streams) > 0 {
		worst = AttestationCovered
	}
	for _, s := range a.Streams {
		line, ps := verifyStream(&s)
		for _, p := range ps {
			problems = append(problems, fmt.Sprintf("stream %s: %s", s.Stream, p))
		}
		res.Streams = append(res.Streams, line)
		switch {
		case s.Status == AttestationInconsistent:
			worst = AttestationInconsistent
			problems = append(problems, fmt.Sprintf("stream %s: the report records an inconsistency: %s", s.Stream, s.Statement))
		case s.Status == AttestationNotCovered && worst != AttestationInconsistent:
			worst = AttestationNotCovered
		}
	}
	if worst != a.Status {
		problems = append(problems, fmt.Sprintf("the attestation's status is %q, its streams give %q", a.Status, worst))
	}
	sigProblems, checked := checkSignatures(a, keys, originPrefix)
	problems = append(problems, sigProblems...)
	if len(keys) > 0 && checked > 0 && len(sigProblems) == 0 {
		res.Signatures = VerificationVerified
	}
	if len(problems) > 0 {
		return res, fmt.Errorf("reports: attestation: %s", strings.Join(problems, "; "))
	}
	return res, nil
}

// verifyStream checks one stream's attestation against its own notes and
// proof.
func verifyStream(s *StreamAttestation) (string, []string) {
	var problems []string
	parse := func(what string, c *Checkpoint) *merkle.Checkpoint {
		if c == nil {
			return nil
		}
		cp, err := merkle.ParseBody(merkle.Text(c.Note))
		if err != nil {
			problems = append(problems, fmt.Sprintf("the %s's note: %v", what, err))
			return nil
		}
		if cp.Origin != c.Origin || cp.Size != c.TreeSize || base64.StdEncoding.EncodeToString(cp.Root[:]) != c.RootHash {
			problems = append(problems, fmt.Sprintf("the %s's origin, tree size or root differ from its signed note", what))
			return nil
		}
		return &cp
	}
	cur, prev := parse("checkpoint", s.Checkpoint), parse("previous checkpoint", s.Previous)
	if s.Status == AttestationNotCovered || s.Status == AttestationInconsistent {
		return fmt.Sprintf("stream %s: %s (entries 1..%d)", s.Stream, s.Status, s.Entries), problems
	}
	if s.Status != AttestationCovered {
		return "", append(problems, fmt.Sprintf("unknown status %q", s.Status))
	}
	if cur == nil {
		return "", append(problems, "covered, but no checkpoint is given")
	}
	if cur.Size < s.Entries {
		problems = append(problems, fmt.Sprintf("the checkpoint's tree (%d entries) does not cover the period's end (entries 1..%d)", cur.Size, s.Entries))
	}
	line := fmt.Sprintf("stream %s: the checkpoint of size %d covers entries 1..%d", s.Stream, cur.Size, s.Entries)
	if prev == nil {
		if len(s.ConsistencyProof) > 0 {
			problems = append(problems, "a consistency proof without a previous checkpoint")
		}
		return line, problems
	}
	if prev.Origin != cur.Origin {
		problems = append(problems, fmt.Sprintf("the previous checkpoint's origin %q differs from %q", prev.Origin, cur.Origin))
	}
	small, large := *prev, *cur
	if small.Size > large.Size {
		small, large = large, small
	}
	proof := make(tlog.TreeProof, len(s.ConsistencyProof))
	for i, p := range s.ConsistencyProof {
		b, err := base64.StdEncoding.DecodeString(p)
		if err != nil || len(b) != tlog.HashSize {
			return line, append(problems, fmt.Sprintf("consistency proof hash %d is not a base64 SHA-256 hash", i))
		}
		copy(proof[i][:], b)
	}
	if small.Size == large.Size {
		if small.Root != large.Root || len(proof) > 0 {
			problems = append(problems, "the previous checkpoint has the same size but another root (or a proof is given)")
		}
	} else if err := tlog.CheckTree(proof, large.Size, large.Root, small.Size, small.Root); err != nil {
		problems = append(problems, fmt.Sprintf("the consistency proof from size %d to %d does not verify: %v", small.Size, large.Size, err))
	}
	return line + fmt.Sprintf(", consistent with the previous report's checkpoint of size %d", prev.Size), problems
}
