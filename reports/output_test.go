package reports

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWriteAndVerify(t *testing.T) {
	signer, verifier := testSigner(t)
	_, other := testSigner(t)
	g := newGenerator(sqliteFixture(t), "sqlite:test")
	r, err := g.Generate(context.Background(), fixtureRequests()[0])
	require.NoError(t, err)
	dir := t.TempDir()
	write := func() *Written {
		w, err := Write(context.Background(), r, dir, []string{FormatHTML, FormatJSON, FormatCSV}, signer, WriteOptions{})
		require.NoError(t, err)
		return w
	}
	w := write()
	assert.Equal(t, filepath.Join(dir, r.Envelope.ID), w.Dir)
	assert.Contains(t, w.Files, "csv/runs.csv")
	assert.Contains(t, w.Files, HTMLFile)
	runs, err := os.ReadFile(filepath.Join(w.Dir, "csv", "runs.csv"))
	require.NoError(t, err)
	assert.Equal(t, "batch_id,job,namespace,actor,actor_type,run_type,parent_batch_id,start,end,duration_seconds,status,attempt\n"+
		"b1,orders-clean,finance,svc-etl,service,normal,,2026-11-01T02:00:00.123Z,2026-11-01T02:00:16.123Z,16,success,1\n",
		string(runs[:bytes.IndexByte(runs[bytes.IndexByte(runs, '\n')+1:], '\n')+bytes.IndexByte(runs, '\n')+2]))
	v, err := Verify(w.Dir, verifier)
	require.NoError(t, err)
	assert.Equal(t, r.Envelope.ID, v.ReportID)
	assert.Equal(t, r.Envelope.ContentSHA256, v.ContentSHA256)
	assert.Equal(t, "reports.test", v.Signer)
	js, err := os.ReadFile(filepath.Join(w.Dir, JSONFile))
	require.NoError(t, err)
	ch, err := ContentHash(js)
	require.NoError(t, err)
	assert.Equal(t, r.Envelope.ContentSHA256, ch)

	_, err = Verify(w.Dir, other)
	assert.ErrorContains(t, err, "signature does not verify", "another key")

	tamper := func(name string, f func([]byte) []byte) {
		t.Helper()
		p := filepath.Join(w.Dir, filepath.FromSlash(name))
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(p, f(b), 0o644))
	}
	for _, tc := range []struct {
		name, file string
		f          func([]byte) []byte
		want       string
	}{
		{"json number", JSONFile, func(b []byte) []byte { return bytes.Replace(b, []byte(`"value": 9`), []byte(`"value": 8`), 1) }, "report.json: SHA-256"},
		{"html number", HTMLFile, func(b []byte) []byte {
			return bytes.Replace(b, []byte(`<div class="v">9</div>`), []byte(`<div class="v">8</div>`), 1)
		}, "report.html: SHA-256"},
		{"csv row", "csv/runs.csv", func(b []byte) []byte { return bytes.Replace(b, []byte("failure"), []byte("success"), 1) }, "csv/runs.csv: SHA-256"},
		{"signature", SignatureFile, func(b []byte) []byte { b[len(b)-6] ^= 1; return b }, "signature does not verify"},
		{"manifest text", SignatureFile, func(b []byte) []byte { return bytes.Replace(b, []byte("kind sox"), []byte("kind gdp"), 1) }, "signature does not verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w = write()
			before, err := os.ReadFile(filepath.Join(w.Dir, filepath.FromSlash(tc.file)))
			require.NoError(t, err)
			tamper(tc.file, tc.f)
			after, err := os.ReadFile(filepath.Join(w.Dir, filepath.FromSlash(tc.file)))
			require.NoError(t, err)
			require.NotEqual(t, before, after, "the tamper changed the file")
			_, err = Verify(w.Dir, verifier)
			assert.ErrorContains(t, err, tc.want)
		})
	}
	w = write()
	require.NoError(t, os.WriteFile(filepath.Join(w.Dir, "csv", "extra.csv"), []byte("a\n"), 0o644))
	_, err = Verify(w.Dir, verifier)
	assert.ErrorContains(t, err, "csv/extra.csv: not covered by the signed manifest")
	w = write()
	require.NoError(t, os.Remove(filepath.Join(w.Dir, HTMLFile)))
	_, err = Verify(w.Dir, verifier)
	assert.ErrorContains(t, err, "report.html: listed in the manifest but cannot be read")

	_, err = Write(context.Background(), r, dir, []string{"docx"}, signer, WriteOptions{})
	assert.ErrorContains(t, err, `unknown format "docx"`)
	_, err = Write(context.Background(), r, dir, []string{FormatJSON}, nil, WriteOptions{})
	assert.ErrorContains(t, err, "signer key is required")
}
