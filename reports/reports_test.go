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

// TestChangeManagementComparesWithThePreviousRun: a job's first run in the
// period is compared with the job's latest run before it (b3 with b1 here),
// so a new version deployed at a period boundary is not missed; and under a
// dataset filter a run is compared with the job's previous run, not with
// the previous run that touched the dataset.
func TestChangeManagementComparesWithThePreviousRun(t *testing.T) {
	s := sqliteFixture(t)
	g := newGenerator(s, "sqlite:test")
	r, err := g.Generate(context.Background(), Request{Kind: KindSOX, From: t0.Add(90 * time.Minute), To: period[1]})
	require.NoError(t, err)
	assert.Equal(t, int64(3), r.Table("runs").Total, "b3, s1, s2")
	assert.Equal(t, [][]any{
		{"orders-clean", "b3", "2026-11-01T04:00:00.123Z", "job_version", "v1.4.0", "v1.5.0", "b1", "svc-etl", ""},
		{"orders-clean", "b3", "2026-11-01T04:00:00.123Z", "targets", "postgres://db:5432/dw.orders", "", "b1", "svc-etl", ""},
		{"crm-sync", "s2", "2026-11-01T06:00:00.123Z", "config_hash", configA, configB, "s1", "svc-crm", "crm-loader"},
		{"crm-sync", "s2", "2026-11-01T06:00:00.123Z", "sources", "postgres://crm:5432/crm.customers", "", "s1", "svc-crm", "crm-loader"},
	}, r.Table("changes").Rows)
	var latest []Query
	for _, q := range r.Queries {
		if q.Params["latest"] == true {
			latest = append(latest, q)
		}
	}
	require.Len(t, latest, 1, "the query is recorded in the report")
	assert.Equal(t, int64(2), latest[0].Results, "the latest earlier run of orders-clean (b1) and of orders-load (b2)")

	// b4 writes dw.orders again after b3, which did not touch it.
	b4 := storetest.RunEvents("b4", t0.Add(5*time.Hour))
	b4[0].JobVersion = "v1.6.0"
	_, err = s.Write(context.Background(), "default", storetest.Stored(b4...))
	require.NoError(t, err)
	r, err = g.Generate(context.Background(), Request{Kind: KindSOX, From: period[0], To: period[1], Filters: Filters{Dataset: "dw.orders"}})
	require.NoError(t, err)
	assert.Equal(t, int64(3), r.Table("runs").Total, "b1, b2, b4")
	assert.Equal(t, [][]any{
		{"orders-clean", "b4", "2026-11-01T07:00:00.123Z", "job_version", "v1.5.0", "v1.6.0", "b3", "svc-etl", ""},
		{"orders-clean", "b4", "2026-11-01T07:00:00.123Z", "targets", "", "postgres://db:5432/dw.orders", "b3", "svc-etl", ""},
	}, r.Table("changes").Rows)
}

// A gap (a number that holds no event; only Elasticsearch makes them, after
// a cut write or a late redelivery) is no refused event: the reports
// neither count nor list it as a dead letter. It is put in with SQL here,
// as an adopted Elasticsearch trail would hold it.
func TestGapsAreNotDeadLetters(t *testing.T) {
	s := sqliteFixture(t)
	_, err := s.DB().Exec(`INSERT INTO dead_letters (stream, sequence, event_id, hash, doc_hash, reason, document, time, ingested, kind)
		VALUES ('default', 1000, '', '', 'h', 'no entry was stored under this number', '{"gap":{}}', ?, ?, 'gap')`,
		t0.Add(time.Hour).UnixNano(), t0.Add(time.Hour).UnixNano())
	require.NoError(t, err)
	g := newGenerator(s, "sqlite:test")
	reqs := fixtureRequests()
	sox, err := g.Generate(context.Background(), reqs[0])
	require.NoError(t, err)
	v, _ := sox.Metric("dead_letters")
	assert.Equal(t, int64(2), v)
	recon, err := g.Generate(context.Background(), reqs[1])
	require.NoError(t, err)
	dl := recon.Table("dead_letters")
	assert.Len(t, dl.Rows, 2)
	for _, row := range dl.Rows {
		assert.NotEqual(t, int64(1000), row[1], "the gap is not listed")
	}

	// A gap before the dead letters does not take one of the table's rows:
	// with room for two, both are listed and the table is complete.
	_, err = s.DB().Exec(`UPDATE dead_letters SET time = ? WHERE kind = 'gap'`, reqs[1].From.UnixNano())
	require.NoError(t, err)
	g.MaxRows = 2
	recon, err = g.Generate(context.Background(), reqs[1])
	require.NoError(t, err)
	dl = recon.Table("dead_letters")
	assert.Len(t, dl.Rows, 2)
	assert.False(t, dl.Truncated, dl.Note)
}
