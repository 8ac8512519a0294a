package reports

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/batchaudit/batchaudit/signing"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/merkle"
	"github.com/batchaudit/batchaudit/store/sqlitestore"
	"github.com/batchaudit/batchaudit/store/storetest"
)

// roots computes the RFC 6962 root of the stream's first n entries for each
// n, from the stored entries, with transparency-dev/merkle: an
// implementation independent of store/merkle and x/mod/sumdb/tlog.
func roots(t *testing.T, s store.Store, stream string, sizes ...int64) map[int64][]byte {
	t.Helper()
	rf := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r := rf.NewEmptyRange(0)
	out := map[int64][]byte{}
	n := int64(0)
	require.NoError(t, s.EachEntry(context.Background(), stream, func(e *store.StoredEntry) error {
		n++
		require.Equal(t, n, e.Sequence)
		leaf := rfc6962.DefaultHasher.HashLeaf(merkle.LeafData(e.Stream, e.Sequence, e.Kind, e.Hash))
		if err := r.Append(leaf, nil); err != nil {
			return err
		}
		for _, size := range sizes {
			if size == n {
				root, err := r.GetRootHash(nil)
				if err != nil {
					return err
				}
				out[size] = root
			}
		}
		return nil
	}))
	return out
}

func b64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	require.NoError(t, err)
	return b
}

// TestAttestationCheckedIndependently: the golden SOX report's attestation
// holds what an independent implementation computes from the stored
// entries (both roots, the consistency proof), its notes verify with the
// checkpoint key, and VerifyAttestation accepts it and rejects every
// alteration.
func TestAttestationCheckedIndependently(t *testing.T) {
	s := sqliteFixture(t)
	r, err := newGenerator(s, "sqlite:test").Generate(context.Background(), fixtureRequests()[0])
	require.NoError(t, err)
	a := r.Attestation
	require.Equal(t, AttestationCovered, a.Status, a.Statement)
	require.NotNil(t, a.Previous)
	assert.Equal(t, "sox-20261101T015900Z-20261101T040000Z-32c36a8d", a.Previous.ID, "the SOX report of the first two hours")
	require.Len(t, a.Streams, 1)
	st := a.Streams[0]
	last, err := s.LastSequence(context.Background(), "default")
	require.NoError(t, err)
	assert.Equal(t, int64(48), last)
	assert.Equal(t, last, st.Entries, "every entry of the fixture is in the period")
	assert.Equal(t, int64(48), st.Checkpoint.TreeSize)
	assert.Equal(t, int64(34), st.Previous.TreeSize, "b1 and b2: 17 events each")
	want := roots(t, s, "default", 34, 48)
	assert.Equal(t, want[48], b64(t, st.Checkpoint.RootHash))
	assert.Equal(t, want[34], b64(t, st.Previous.RootHash))
	var p [][]byte
	for _, h := range st.ConsistencyProof {
		p = append(p, b64(t, h))
	}
	require.NoError(t, proof.VerifyConsistency(rfc6962.DefaultHasher, 34, 48, p, want[34], want[48]))
	_, verifier, _ := storetest.CheckpointKey()
	for _, n := range []string{st.Checkpoint.Note, st.Previous.Note} {
		_, err := note.Open([]byte(n), note.VerifierList(verifier))
		require.NoError(t, err)
	}
	assert.Equal(t, SignatureCheck{Status: VerificationVerified, Keys: []string{"storetest.checkpoints"},
		Statement: "The 2 checkpoint(s) above are signed by storetest.checkpoints, with the origin batchaudit/<stream>."}, a.Verification)

	keys := []note.Verifier{verifier}
	res, err := VerifyAttestation(&a, keys, "")
	require.NoError(t, err)
	assert.Equal(t, &AttestationCheck{Status: AttestationCovered, Signatures: VerificationVerified,
		Streams: []string{"stream default: the checkpoint of size 48 covers entries 1..48, consistent with the previous report's checkpoint of size 34"}}, res)
	res, err = VerifyAttestation(&a, nil, "")
	require.NoError(t, err)
	assert.Equal(t, VerificationNotVerified, res.Signatures)

	_, otherVK, err := signing.GenerateKey("someone.else")
	require.NoError(t, err)
	other, err := signing.LoadVerifier(otherVK)
	require.NoError(t, err)
	flip := func(s string) string {
		b := b64(t, s)
		b[0] ^= 1
		return base64.StdEncoding.EncodeToString(b)
	}
	for name, tc := range map[string]struct {
		alter func(a *Attestation)
		keys  []note.Verifier
		want  string
	}{
		"proof hash":    {func(a *Attestation) { a.Streams[0].ConsistencyProof[2] = flip(a.Streams[0].ConsistencyProof[2]) }, keys, "does not verify"},
		"proof dropped": {func(a *Attestation) { a.Streams[0].ConsistencyProof = a.Streams[0].ConsistencyProof[1:] }, nil, "does not verify"},
		"not covering":  {func(a *Attestation) { a.Streams[0].Entries = 49 }, keys, "does not cover the period's end (entries 1..49)"},
		"root":          {func(a *Attestation) { a.Streams[0].Checkpoint.RootHash = flip(a.Streams[0].Checkpoint.RootHash) }, nil, "differ from its signed note"},
		"previous root": {func(a *Attestation) { a.Streams[0].Previous.RootHash = flip(a.Streams[0].Previous.RootHash) }, nil, "differ from its signed note"},
		"other key":     {func(a *Attestation) {}, []note.Verifier{other}, "checkpoint signature"},
		"status":        {func(a *Attestation) { a.Streams[0].Status = AttestationNotCovered }, nil, `the attestation's status is "covered", its streams give "not_covered"`},
		"inconsistency": {func(a *Attestation) { a.Status, a.Streams[0].Status = AttestationInconsistent, AttestationInconsistent }, nil, "the report records an inconsistency"},
		"signature": {func(a *Attestation) {
			a.Streams[0].Checkpoint.Note = a.Streams[0].Checkpoint.Note[:len(a.Streams[0].Checkpoint.Note)-3] + "AA\n"
		}, keys, "checkpoint signature"},
		"previous swaps": {func(a *Attestation) {
			a.Streams[0].Previous, a.Streams[0].Checkpoint = a.Streams[0].Checkpoint, a.Streams[0].Previous
		}, nil, "does not cover"},
	} {
		t.Run(name, func(t *testing.T) {
			c := a
			c.Streams = []StreamAttestation{a.Streams[0]}
			cp, prev := *a.Streams[0].Checkpoint, *a.Streams[0].Previous
			c.Streams[0].Checkpoint, c.Streams[0].Previous = &cp, &prev
			c.Streams[0].ConsistencyProof = append([]string(nil), a.Streams[0].ConsistencyProof...)
			tc.alter(&c)
			_, err := VerifyAttestation(&c, tc.keys, "")
			assert.ErrorContains(t, err, tc.want)
		})
	}
	_, err = VerifyAttestation(&a, keys, "other/")
	assert.ErrorContains(t, err, `has origin "batchaudit/default", want "other/default"`)
}

// attestOf generates a SOX report of [from, to) and returns its attestation.
func attestOf(t *testing.T, g *Generator, from, to time.Time, schedule string) (*Report, Attestation) {
	t.Helper()
	r, err := g.Generate(context.Background(), Request{Kind: KindSOX, From: from, To: to, Schedule: schedule})
	require.NoError(t, err)
	_, err = r.encode()
	require.NoError(t, err)
	return r, r.Attestation
}

// TestAttestationStates walks one trail through every state: empty, no
// checkpoint, a checkpoint too small, covered, a forged checkpoint, a
// rewritten history and a truncated tree.
func TestAttestationStates(t *testing.T) {
	ctx := context.Background()
	s, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "audit.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	g := newGenerator(s, "sqlite:test")
	signer, _, _ := storetest.CheckpointKey()
	write := func(batch string, at time.Time) {
		_, err := s.Write(ctx, "default", storetest.Stored(storetest.RunEvents(batch, at)...))
		require.NoError(t, err)
	}
	day := func(n int) time.Time { return t0.Truncate(24*time.Hour).AddDate(0, 0, n) }

	_, a := attestOf(t, g, day(-1), day(0), "")
	assert.Equal(t, AttestationEmpty, a.Status)
	assert.Empty(t, a.Streams)
	assert.Equal(t, VerificationNotVerified, a.Verification.Status, "nothing to verify")

	write("d0", day(0).Add(time.Hour)) // entries 1..17
	_, a = attestOf(t, g, day(0), day(1), "")
	require.Equal(t, AttestationNotCovered, a.Status)
	assert.Equal(t, "Not covered: stream default has no kept checkpoint, so nothing signed covers its entries 1..17 "+
		"(is the audit exporter's checkpoints::key_files set?).", a.Streams[0].Statement)
	_, err = VerifyAttestation(&a, nil, "")
	assert.NoError(t, err, "a report that says it is not covered is not a failure")

	storetest.SignCheckpoint(t, s, "default", signer, day(1))
	write("d1", day(1).Add(time.Hour)) // 18..34
	_, a = attestOf(t, g, day(1), day(2), "")
	require.Equal(t, AttestationNotCovered, a.Status)
	assert.Contains(t, a.Streams[0].Statement, "no kept checkpoint of stream default covers its entries 1..34; the latest is of size 17")

	storetest.SignCheckpoint(t, s, "default", signer, day(2))
	r1, a := attestOf(t, g, day(1), day(2), "")
	require.Equal(t, AttestationCovered, a.Status, a.Streams[0].Statement)
	assert.Nil(t, a.Previous)
	assert.Equal(t, int64(34), a.Streams[0].Checkpoint.TreeSize)
	// Day 0 is covered by the first checkpoint (17), not the latest.
	r0, a0 := attestOf(t, g, day(0), day(1), "")
	assert.Equal(t, int64(17), a0.Streams[0].Checkpoint.TreeSize, "the first kept checkpoint that covers")
	_, err = s.RecordReport(ctx, NewRecord(r0, &Written{Dir: "/r0", ContentSHA256: r0.Envelope.ContentSHA256}, ""))
	require.NoError(t, err)
	r1b, a := attestOf(t, g, day(1), day(2), "")
	require.Equal(t, AttestationCovered, a.Status)
	assert.Equal(t, r0.Envelope.ID, a.Previous.ID)
	assert.Equal(t, int64(17), a.Streams[0].Previous.TreeSize)
	assert.NotEmpty(t, a.Streams[0].ConsistencyProof)
	assert.NotEqual(t, r1.Envelope.ContentSHA256, r1b.Envelope.ContentSHA256, "a previous report recorded since: other content")
	_, err = s.RecordReport(ctx, NewRecord(r1b, &Written{Dir: "/r1", ContentSHA256: r1b.Envelope.ContentSHA256}, ""))
	require.NoError(t, err)

	// A forged checkpoint of day 2's entries (signed with the key: a
	// holder of the key who rewrote the store's checkpoints) does not
	// match the stored tree.
	write("d2", day(2).Add(time.Hour)) // 35..51
	tree, err := s.Tree(ctx, "default")
	require.NoError(t, err)
	forged := tree.Hash
	forged[0] ^= 1
	msg, err := merkle.Checkpoint{Origin: "batchaudit/default", Size: tree.N, Root: forged}.Sign(signer)
	require.NoError(t, err)
	require.NoError(t, s.PutCheckpoint(ctx, store.StoredCheckpoint{Stream: "default", Size: tree.N, Root: hex.EncodeToString(forged[:]), Note: string(msg), Created: day(3)}))
	_, a = attestOf(t, g, day(2), day(3), "")
	require.Equal(t, AttestationInconsistent, a.Status)
	assert.Contains(t, a.Streams[0].Statement, "Inconsistent: the checkpoints of size 34 and 51 of stream default cannot both hold")
	assert.Contains(t, a.Statement, "INCONSISTENT")
	assert.Equal(t, VerificationVerified, a.Verification.Status, "the forgery is signed with the right key: only the tree shows it")
	_, err = VerifyAttestation(&a, nil, "")
	assert.ErrorContains(t, err, "the report records an inconsistency")
	// Without a previous report the same forgery shows against the tiles.
	_, a = attestOf(t, g, day(2), day(3), "no-such-schedule")
	require.Equal(t, AttestationInconsistent, a.Status)
	assert.Contains(t, a.Streams[0].Statement, "does not give the root the checkpoint of size 51 signs")

	// A checkpoint larger than the stored tree: entries were removed.
	_, err = s.Write(ctx, "other", storetest.Stored(storetest.RunEvents("o1", day(3).Add(time.Hour))...)) // 1..17
	require.NoError(t, err)
	msg, err = merkle.Checkpoint{Origin: "batchaudit/other", Size: 20, Root: forged}.Sign(signer)
	require.NoError(t, err)
	require.NoError(t, s.PutCheckpoint(ctx, store.StoredCheckpoint{Stream: "other", Size: 20, Root: hex.EncodeToString(forged[:]), Note: string(msg), Created: day(4)}))
	_, a = attestOf(t, g, day(3), day(4), "no-such-schedule")
	require.Equal(t, AttestationInconsistent, a.Status)
	require.Len(t, a.Streams, 2)
	assert.Equal(t, "other", a.Streams[1].Stream)
	assert.Equal(t, "Inconsistent: stream other stores a tree of 17 entries, but a signed checkpoint covers 20: entries were removed.", a.Streams[1].Statement)
	assert.Contains(t, a.Statement, "for 2 of 2 stream(s)")
}

// TestAttestationRewrittenHistory: the previous report's checkpoint is not
// a prefix of the current log (the store was rewritten and re-signed since).
func TestAttestationRewrittenHistory(t *testing.T) {
	ctx := context.Background()
	s := sqliteFixture(t)
	signer, _, _ := storetest.CheckpointKey()
	root := [32]byte{1, 2, 3}
	msg, err := merkle.Checkpoint{Origin: "batchaudit/default", Size: 20, Root: root}.Sign(signer)
	require.NoError(t, err)
	from := period[0].Add(-24 * time.Hour)
	_, err = s.RecordReport(ctx, store.ReportRecord{ID: "s/earlier", Kind: KindSOX, Schedule: "s", From: from, To: period[0], ContentSHA256: "x",
		Checkpoints: []store.ReportCheckpoint{{Stream: "default", Size: 20, Note: string(msg)}}})
	require.NoError(t, err)
	_, a := attestOf(t, newGenerator(s, "sqlite:test"), period[0], period[1], "s")
	require.Equal(t, AttestationInconsistent, a.Status)
	assert.Equal(t, "s/earlier", a.Previous.ID)
	assert.Contains(t, a.Streams[0].Statement, "the checkpoints of size 20 and 48 of stream default cannot both hold: the log was rewritten")
}

// TestAttestationReproducible: a closed period regenerated after the trail
// grew, newer checkpoints were signed and the next report was recorded
// gives the same content hash, with or without verifier keys (which only
// change attestation.verification, outside the hash).
func TestAttestationReproducible(t *testing.T) {
	ctx := context.Background()
	s := sqliteFixture(t)
	g := newGenerator(s, "sqlite:test")
	req := fixtureRequests()[0]
	first, err := g.Generate(ctx, req)
	require.NoError(t, err)
	_, err = first.encode()
	require.NoError(t, err)
	_, err = s.RecordReport(ctx, NewRecord(first, &Written{Dir: "/first", ContentSHA256: first.Envelope.ContentSHA256}, ""))
	require.NoError(t, err)
	signer, _, _ := storetest.CheckpointKey()
	_, err = s.Write(ctx, "default", storetest.Stored(storetest.RunEvents("later", period[1].Add(time.Hour))...))
	require.NoError(t, err)
	storetest.SignCheckpoint(t, s, "default", signer, period[1].Add(2*time.Hour))
	_, next := attestOf(t, g, period[1], period[1].Add(24*time.Hour), "")
	require.Equal(t, AttestationCovered, next.Status)
	assert.Equal(t, first.Envelope.ID, next.Previous.ID)
	assert.Equal(t, []int64{65, 48}, []int64{next.Streams[0].Checkpoint.TreeSize, next.Streams[0].Previous.TreeSize})

	noKeys := newGenerator(s, "sqlite:other")
	noKeys.CheckpointKeys = nil
	again, err := noKeys.Generate(ctx, req)
	require.NoError(t, err)
	_, err = again.encode()
	require.NoError(t, err)
	assert.Equal(t, first.Envelope.ContentSHA256, again.Envelope.ContentSHA256)
	assert.Equal(t, first.Attestation.Streams, again.Attestation.Streams)
	assert.Equal(t, VerificationNotVerified, again.Attestation.Verification.Status)
	assert.Contains(t, again.Attestation.Verification.Statement, "no checkpoint verifier key was given")
}

// TestPreviousReportChoice: the previous report is of the same kind and
// filters (and schedule, if asked), ends last but no later than this one,
// and is never this period itself.
func TestPreviousReportChoice(t *testing.T) {
	ctx := context.Background()
	s := sqliteFixture(t) // holds "sox-20261101T015900Z-20261101T040000Z-32c36a8d" (no schedule)
	cp, err := s.Checkpoints(ctx, "default")
	require.NoError(t, err)
	rec := func(id, kind, schedule, filters string, from, to time.Time) {
		_, err := s.RecordReport(ctx, store.ReportRecord{ID: id, Kind: kind, Schedule: schedule, Filters: filters, From: from, To: to,
			ContentSHA256: id, Checkpoints: []store.ReportCheckpoint{{Stream: "default", Size: cp[0].Size, Note: cp[0].Note}}})
		require.NoError(t, err)
	}
	h := func(n int) time.Time { return period[0].Add(time.Duration(n) * time.Hour) }
	rec("daily/a", KindSOX, "daily", "", h(-24), h(0))
	rec("daily/b", KindSOX, "daily", "", h(0), h(1))
	rec("recon", KindReconciliation, "", "", h(0), h(3))
	rec("job", KindSOX, "", "job=orders-load", h(0), h(3))
	rec("later", KindSOX, "", "", h(0), h(30))
	rec("same-period", KindSOX, "", "", h(0), h(24))
	g := newGenerator(s, "sqlite:test")
	for _, c := range []struct {
		schedule string
		from, to time.Time
		want     string
	}{
		{"", h(0), h(24), "sox-20261101T015900Z-20261101T040000Z-32c36a8d"}, // ends at +2h: the latest end not after +24h
		{"daily", h(0), h(24), "daily/b"},
		{"daily", h(1), h(2), "daily/b"},
		{"daily", h(-24), h(0), ""},
		{"", h(30), h(40), "later"},
	} {
		_, a := attestOf(t, g, c.from, c.to, c.schedule)
		got := ""
		if a.Previous != nil {
			got = a.Previous.ID
		}
		assert.Equal(t, c.want, got, "%q %s..%s", c.schedule, c.from, c.to)
	}
}
