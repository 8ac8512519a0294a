package reports

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/canonical"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/sqlitestore"
	"github.com/batchaudit/batchaudit/store/storetest"
)

// The crafted trail of the unit tests (the end-to-end golden test in
// testbed/ uses a trail written by the built collector instead):
//
//   - b1 (T0, orders-clean, svc-etl): success, storetest.RunEvents: read 3,
//     written 2, skipped 1, errored 1 (does not reconcile by one), one
//     data_loss finding, A-1 inserted, A-2 updated, A-9 deleted;
//   - b2 (T0+1h, orders-load, alice): the same run, failed;
//   - b3 (T0+2h): started, read A-1, never ended; a rerun on job version
//     v1.5.0 after b1's v1.4.0 (same configuration);
//   - s1 (T0+3h, crm-sync, svc-crm): read C-1 and C-2 from crm.customers
//     (ePHI in the catalog, customer pseudonymized), wrote both to
//     dw.customers (an export out of ePHI);
//   - s2 (T0+4h, crm-sync, svc-crm, sent as principal crm-loader): a
//     backfill that deleted C-1 from dw.customers, with a configuration
//     hash other than s1's;
//   - a dead letter (T0+5s) and an integrity alarm (T0+3s);
//   - signed checkpoints (storetest.CheckpointKey) after b2 (34 entries) and
//     at the end (57), and a recorded SOX report of [T0-1m, T0+2h) whose
//     attestation used the first.
var (
	t0         = storetest.T0
	testKey    = []byte("test-redaction-key")
	crm        = auditevent.Dataset{Namespace: "postgres://crm:5432", Name: "crm.customers"}
	dwCustomer = auditevent.Dataset{Namespace: "postgres://dw:5432", Name: "dw.customers"}
	period     = [2]time.Time{t0.Add(-time.Minute), t0.Add(24 * time.Hour)}
	// configA and configB are configuration hashes as jobaudit.WithConfig
	// records them (SHA-256, hex).
	configA = "5d41402abc4b2a76b9719d911017c592e8f5b1c3a3d0c8f5e6e1c9b2a7f4d3e1"
	configB = "7c6a180b36896a0a8c02787eeafb0e4c0e2d8f1a9b3c5d7e9f1a2b3c4d5e6f70"
)

var testCatalog = Catalog{
	Controller: "Example Corp, dpo@example.com",
	Datasets: []DatasetEntry{
		{Name: "dw.orders", Purposes: []string{"financial reporting"}, DataCategories: []string{"order amounts"},
			Recipients: []string{"finance"}, ErasureLimit: "10 years"},
		{Name: "crm.customers", Purposes: []string{"customer care"}, DataCategories: []string{"name", "health plan"},
			SubjectCategories: []string{"customers"}, Recipients: []string{"support"}, ErasureLimit: "2 years after contract end",
			SubjectFields: []string{"customer"}, EPHI: true},
		{Name: "dw.*", Namespace: "postgres://dw:5432", Purposes: []string{"analytics"}, DataCategories: []string{"name"},
			SubjectCategories: []string{"customers"}, Recipients: []string{"analysts"}, ErasureLimit: "1 year",
			SubjectFields: []string{"customer"}},
	},
}

func subjectRun(batchID string, start time.Time) []auditevent.Event {
	n := 0
	next := func(name string) auditevent.Event {
		e := auditevent.Event{ID: auditevent.DeterministicID("reports-test", batchID, string(rune('a'+n))), Name: name,
			Time: start.Add(time.Duration(n) * time.Second), BatchID: batchID, JobName: "crm-sync", JobNamespace: "crm",
			Actor: auditevent.Actor{ID: "svc-crm", Type: "service"}}
		n++
		return e
	}
	var out []auditevent.Event
	out = append(out, next(auditevent.BatchStart))
	for _, c := range []struct{ id, name string }{{"C-1", "Jane Doe"}, {"C-2", "Max Mustermann"}} {
		data := map[string]any{"id": c.id, "customer": canonical.Pseudonym(testKey, c.name), "plan": "gold"}
		e := next(auditevent.RecordRead)
		e.RecordID, e.Source, e.RecordData = c.id, crm, data
		out = append(out, e)
		e = next(auditevent.RecordWrite)
		e.RecordID, e.Target, e.RecordData, e.ChangeType = c.id, dwCustomer, data, auditevent.ChangeInsert
		out = append(out, e)
	}
	e := next(auditevent.BatchEnd)
	e.BatchResult, e.Counters = auditevent.ResultSuccess, &auditevent.Counters{Read: 2, Written: 2}
	return append(out, e)
}

func deleteRun(batchID string, start time.Time) []auditevent.Event {
	s := subjectRun(batchID, start)
	del := s[1]
	del.ID = auditevent.DeterministicID("reports-test", batchID, "delete")
	del.Name, del.Source, del.Target, del.RecordData = auditevent.RecordDelete, auditevent.Dataset{}, dwCustomer, nil
	del.ChangeType, del.DerivedBy = auditevent.ChangeDelete, "cdcprocessor"
	end := s[len(s)-1]
	end.Time = start.Add(2 * time.Second)
	end.Counters = &auditevent.Counters{}
	return []auditevent.Event{s[0], del, end}
}

// writeFixture writes the crafted trail into s.
func writeFixture(t testing.TB, s store.Store) {
	t.Helper()
	ctx := context.Background()
	b2 := storetest.RunEvents("b2", t0.Add(time.Hour))
	for i := range b2 {
		b2[i].JobName, b2[i].Actor = "orders-load", auditevent.Actor{ID: "alice", Type: "human"}
	}
	b2[len(b2)-1].BatchResult = auditevent.ResultFailure
	b1, b3 := storetest.RunEvents("b1", t0), storetest.RunEvents("b3", t0.Add(2*time.Hour))[:3]
	s1, s2 := subjectRun("s1", t0.Add(3*time.Hour)), deleteRun("s2", t0.Add(4*time.Hour))
	// Run context on the batch starts: b3 runs new code, s2 a new
	// configuration (b2 reports none); s2 was sent as crm-loader.
	for _, c := range []struct {
		start                    *auditevent.Event
		version, config, runType string
	}{
		{&b1[0], "v1.4.0", configA, auditevent.RunNormal},
		{&b3[0], "v1.5.0", configA, auditevent.RunRerun},
		{&s1[0], "2f1c02b", configA, auditevent.RunNormal},
		{&s2[0], "2f1c02b", configB, auditevent.RunBackfill},
	} {
		c.start.JobVersion, c.start.JobConfigHash, c.start.RunType = c.version, c.config, c.runType
	}
	for i := range s2 {
		s2[i].AuthPrincipal = "crm-loader"
	}
	batches := [][]auditevent.Event{b1, b2, b3, s1, s2}
	signer, _, _ := storetest.CheckpointKey()
	for i, b := range batches {
		_, err := s.Write(ctx, "default", storetest.Stored(b...))
		require.NoError(t, err)
		if i == 1 {
			// After b1 and b2: a checkpoint of 34 entries, and the SOX
			// report of their two hours, recorded as the report index
			// would: the golden SOX report proves its checkpoint
			// consistent with this one.
			storetest.SignCheckpoint(t, s, "default", signer, t0.Add(3*time.Hour))
			recordReport(t, s.(Source), Request{Kind: KindSOX, From: period[0], To: t0.Add(2 * time.Hour)})
		}
	}
	bad := storetest.RunEvents("dl", t0)[5]
	bad.ID, bad.SkipReason = "dead-1", ""
	dl := storetest.Stored(bad)
	dl[0].DeadLetterReason = "invalid batchaudit.record.skip: batchaudit.record.skip_reason: is required"
	tampered := storetest.RunEvents("b1", t0)[3]
	tampered.RecordID = "A-1-changed"
	_, err := s.Write(ctx, "default", append(dl, storetest.Stored(tampered)...))
	require.NoError(t, err)
	storetest.SignCheckpoint(t, s, "default", signer, t0.Add(5*time.Hour))
}

// recordReport generates a report and records it in the report index as
// if it had been written to /reports.
func recordReport(t testing.TB, src Source, req Request) *Report {
	t.Helper()
	r, err := newGenerator(src, "test").Generate(context.Background(), req)
	require.NoError(t, err)
	_, err = r.encode()
	require.NoError(t, err)
	_, err = src.RecordReport(context.Background(), NewRecord(r, &Written{Dir: "/reports/" + r.Envelope.ID,
		Files: []string{JSONFile}, ContentSHA256: r.Envelope.ContentSHA256}, req.Schedule))
	require.NoError(t, err)
	return r
}

func sqliteFixture(t testing.TB) *sqlitestore.Store {
	t.Helper()
	s, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "audit.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	writeFixture(t, s)
	return s
}

// newGenerator verifies checkpoints with storetest.CheckpointKey.
func newGenerator(src Source, name string) *Generator {
	_, verifier, _ := storetest.CheckpointKey()
	return &Generator{Source: src, StoreName: name, Catalog: testCatalog, RedactionKey: testKey,
		Now: func() time.Time { return t0.Add(48 * time.Hour) }, CheckpointKeys: []note.Verifier{verifier}}
}
