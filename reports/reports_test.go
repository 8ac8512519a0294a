package reports

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchaudit/batchaudit/store/storetest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func fixtureRequests() []Request {
	from, to := period[0], period[1]
	return []Request{
		{Kind: KindSOX, From: from, To: to},
		{Kind: KindReconciliation, From: from, To: to},
		{Kind: KindGDPR, From: from, To: to, Subject: "Jane Doe"},
		{Kind: KindHIPAA, From: from, To: to},
		{Kind: KindLineage, From: from, To: to, Filters: Filters{Record: "A-1", Dataset: "dw.orders"}},
		{Kind: KindSOX, From: from, To: to, Filters: Filters{Job: "orders-load"}},
	}
}

func goldenName(r Request) string {
	name := r.Kind
	if f := r.Filters.String(); f != "" {
		name += "-" + strings.NewReplacer(" ", "-", "=", "_").Replace(f)
	}
	return filepath.Join("testdata", name+".golden")
}

// TestGolden checks every number and cell of every report kind over the
// crafted trail (see fixture_test.go) against testdata/*.golden, which
// were reviewed by hand; -update rewrites them.
func TestGolden(t *testing.T) {
	g := newGenerator(sqliteFixture(t), "sqlite:test")
	for _, req := range fixtureRequests() {
		t.Run(filepath.Base(goldenName(req)), func(t *testing.T) {
			r, err := g.Generate(context.Background(), req)
			require.NoError(t, err)
			got := r.Text()
			if *update {
				require.NoError(t, os.WriteFile(goldenName(req), []byte(got), 0o644))
			}
			want, err := os.ReadFile(goldenName(req))
			require.NoError(t, err)
			assert.Equal(t, string(want), got)
		})
	}
}

// TestNumbers spells out the key numbers of the fixture, so a reader sees
// what the golden files encode.
func TestNumbers(t *testing.T) {
	g := newGenerator(sqliteFixture(t), "sqlite:test")
	gen := func(req Request) *Report {
		r, err := g.Generate(context.Background(), req)
		require.NoError(t, err)
		return r
	}
	reqs := fixtureRequests()
	sox := gen(reqs[0])
	for id, want := range map[string]int64{"runs": 5, "runs_succeeded": 3, "runs_failed": 1, "runs_unended": 1,
		"records_read": 9, "records_written": 6, "records_skipped": 2, "records_errored": 2, "runs_unbalanced": 3,
		"findings": 2, "findings_high": 2, "dead_letters": 2, "integrity_alarms": 1, "exceptions": 9} {
		v, ok := sox.Metric(id)
		assert.True(t, ok, id)
		assert.Equal(t, want, v, id)
	}
	assert.Equal(t, AttestationCovered, sox.Attestation.Status)
	assert.Equal(t, int64(5), sox.Table("runs").Total)
	recon := gen(reqs[1])
	v, _ := recon.Metric("records_gap")
	assert.Equal(t, int64(-1), v, "b1 and b2 over-account by one each, b3 lacks one")
	gdpr := gen(reqs[2])
	assert.Equal(t, SubjectRef(testKey, "Jane Doe"), gdpr.Envelope.Filters.Subject)
	js, err := json.Marshal(gdpr)
	require.NoError(t, err)
	assert.NotContains(t, string(js), "Jane Doe", "the subject's identifier never reaches the report")
	assert.Equal(t, [][]any{{"C-1", "postgres://dw:5432", "postgres://dw:5432/dw.customers", "2026-11-01T06:00:01.123Z", "s2", "crm-sync", "cdcprocessor", "1 year"}},
		gdpr.Table("erasures").Rows)
	hipaa := gen(reqs[3])
	v, _ = hipaa.Metric("ephi_exports")
	assert.Equal(t, int64(1), v)
	byJob := gen(reqs[5])
	v, _ = byJob.Metric("runs")
	assert.Equal(t, int64(1), v, "the job filter")
}

func TestRequestValidation(t *testing.T) {
	g := newGenerator(sqliteFixture(t), "sqlite:test")
	for _, tc := range []struct {
		req  Request
		want string
	}{
		{Request{Kind: "sox2", From: period[0], To: period[1]}, `unknown report kind "sox2"`},
		{Request{Kind: KindSOX, From: period[1], To: period[0]}, "--from before --to"},
		{Request{Kind: KindLineage, From: period[0], To: period[1]}, "needs a record"},
		{Request{Kind: KindSOX, From: period[0], To: period[1], Subject: "x"}, "--subject is for gdpr"},
	} {
		_, err := g.Generate(context.Background(), tc.req)
		assert.ErrorContains(t, err, tc.want)
	}
	g.RedactionKey = nil
	_, err := g.Generate(context.Background(), Request{Kind: KindGDPR, From: period[0], To: period[1], Subject: "Jane Doe"})
	assert.ErrorContains(t, err, "the redaction key is required")
}

// TestReproducible: regenerating a closed period gives the same content
// hash, whenever and from wherever it is generated.
func TestReproducible(t *testing.T) {
	s := sqliteFixture(t)
	a := newGenerator(s, "sqlite:a")
	b := newGenerator(s, "sqlite:b")
	b.Now = func() time.Time { return period[1].AddDate(1, 0, 0) }
	for _, req := range fixtureRequests() {
		ra, err := a.Generate(context.Background(), req)
		require.NoError(t, err)
		rb, err := b.Generate(context.Background(), req)
		require.NoError(t, err)
		ja, err := ra.encode()
		require.NoError(t, err)
		jb, err := rb.encode()
		require.NoError(t, err)
		assert.NotEqual(t, ja, jb, "generated_at and store differ")
		assert.Equal(t, ra.Envelope.ContentSHA256, rb.Envelope.ContentSHA256, req.Kind)
		assert.Len(t, ra.Envelope.ContentSHA256, 64)
	}
}

// TestPrunedPeriodIsNoted: a report whose period starts before a retention
// cutoff says that entries of it were removed.
func TestPrunedPeriodIsNoted(t *testing.T) {
	s := sqliteFixture(t)
	req := fixtureRequests()[0]
	ev := storetest.RetentionEvent(req.From.Add(400*24*time.Hour + time.Hour)) // cutoff: an hour into the period
	_, err := s.Write(context.Background(), "default", storetest.Stored(ev))
	require.NoError(t, err)
	r, err := newGenerator(s, "sqlite:test").Generate(context.Background(), req)
	require.NoError(t, err)
	assert.Contains(t, r.Completeness.Notes, "Retention removed entries #1..#18 of stream default, all from before "+
		fmtTime(req.From.Add(time.Hour))+" (batchaudit.retention.prune at #49, "+fmtTime(ev.Time)+"): the period starts before that, "+
		"so runs and events of it may be missing here; batchaudit verify reports the pruned range.")
	later := req
	later.From = req.From.Add(2 * time.Hour)
	r, err = newGenerator(s, "sqlite:test").Generate(context.Background(), later)
	require.NoError(t, err)
	for _, n := range r.Completeness.Notes {
		assert.NotContains(t, n, "Retention removed", "a period after the cutoff is complete")
	}
}
