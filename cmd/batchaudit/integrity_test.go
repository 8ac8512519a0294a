package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/exporter/auditexporter"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/merkle"
	"github.com/batchaudit/batchaudit/store/sqlitestore"
	"github.com/batchaudit/batchaudit/store/storetest"
)

// keygen makes a signer key with the CLI and returns its file and the
// verifier key it printed.
func keygen(t *testing.T, dir, name string) (keyFile, verifier string) {
	t.Helper()
	keyFile = filepath.Join(dir, name+".key")
	code, out, errOut := runCLI(t, "keygen", "--name", "audit.example/"+name, "--out", keyFile)
	require.Equal(t, 0, code, errOut)
	return keyFile, strings.TrimSpace(out)
}

// exportRuns writes runs through the audit exporter (in process, as the
// collector runs it) with checkpoints signed by keyFiles every 10 stored
// entries and at shutdown, published to the file published.
func exportRuns(t *testing.T, db, published string, keyFiles []string, runs ...string) {
	t.Helper()
	f := auditexporter.NewFactory()
	cfg := f.CreateDefaultConfig().(*auditexporter.Config)
	cfg.Stream = "default"
	cfg.SQLite.Path = db
	cfg.QueueConfig = configoptional.None[exporterhelper.QueueBatchConfig]()
	cfg.RetryConfig.Enabled = false
	cfg.Checkpoints.KeyFiles = keyFiles
	cfg.Checkpoints.File = published
	cfg.Checkpoints.MaxEvents = 10
	require.NoError(t, cfg.Validate())
	exp, err := f.CreateLogs(context.Background(), exportertest.NewNopSettings(component.MustNewType("audit")), cfg)
	require.NoError(t, err)
	require.NoError(t, exp.Start(context.Background(), componenttest.NewNopHost()))
	for i, id := range runs {
		for _, batch := range [][]auditevent.Event{storetest.RunEvents(id, storetest.T0.Add(time.Duration(i)*time.Hour))} {
			ld := plog.NewLogs()
			lrs := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords()
			for j := range batch {
				batch[j].ToLogRecord(lrs.AppendEmpty())
			}
			require.NoError(t, exp.ConsumeLogs(context.Background(), ld))
		}
	}
	require.NoError(t, exp.Shutdown(context.Background()))
}

// published reads the checkpoint file's lines.
func publishedLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m))
		out = append(out, m)
	}
	return out
}

func eventIDs(t *testing.T, db string, batch string) []string {
	t.Helper()
	s, err := sqlitestore.Open(context.Background(), db)
	require.NoError(t, err)
	defer s.Close()
	evs, err := store.RunEvents(context.Background(), s, batch)
	require.NoError(t, err)
	var ids []string
	for _, e := range evs {
		ids = append(ids, e.ID)
	}
	require.NotEmpty(t, ids)
	return ids
}

func TestCheckpointCommand(t *testing.T) {
	dir := t.TempDir()
	key, vkey := keygen(t, dir, "cp")
	db, published := filepath.Join(dir, "audit.db"), filepath.Join(dir, "checkpoints.jsonl")

	// Before any checkpoint: a clear error.
	exportRuns(t, db, "", nil, "b0")
	code, _, errOut := runCLI(t, "checkpoint", "--db", db)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "stream default has no checkpoint yet")

	exportRuns(t, db, published, []string{key}, "b1", "b2")
	lines := publishedLines(t, published)
	require.GreaterOrEqual(t, len(lines), 2, "a checkpoint every 10 entries and one at shutdown")
	last := lines[len(lines)-1]
	assert.Equal(t, true, last["final"], "the shutdown's checkpoint is marked final")
	assert.Equal(t, float64(3*17), last["size"])

	// The latest checkpoint, as a signed note and as JSON.
	code, out, errOut := runCLI(t, "checkpoint", "--db", db)
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, last["note"], out)
	assert.True(t, strings.HasPrefix(out, "batchaudit/default\n51\n"), out)
	code, out, _ = runCLI(t, "checkpoint", "--db", db, "--stream", "default", "--json")
	require.Equal(t, 0, code)
	var cp store.StoredCheckpoint
	require.NoError(t, json.Unmarshal([]byte(out), &cp))
	assert.Equal(t, int64(51), cp.Size)
	assert.Equal(t, last["note"], cp.Note)

	// The published checkpoints verify the whole trail (the first 17
	// entries were stored before checkpoints were on: the first checkpoint covers them).
	code, out, errOut = runCLI(t, "verify", "--db", db, "--key", vkey, "--checkpoints", published)
	require.Equal(t, 0, code, out+errOut)
	assert.Contains(t, out, "the latest covers 51")

	code, _, errOut = runCLI(t, "checkpoint", "--db", db, "--stream", "nope")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "stream nope has no checkpoint yet")
}

func TestProveAndVerifyProof(t *testing.T) {
	dir := t.TempDir()
	key, vkey := keygen(t, dir, "prove")
	db, published := filepath.Join(dir, "audit.db"), filepath.Join(dir, "checkpoints.jsonl")
	exportRuns(t, db, published, []string{key}, "b1")
	first := publishedLines(t, published)[0]
	older := filepath.Join(dir, "older.note")
	require.NoError(t, os.WriteFile(older, []byte(first["note"].(string)), 0o644))
	exportRuns(t, db, published, []string{key}, "b2", "b3")
	pubFile := filepath.Join(dir, "prove.pub")
	require.NoError(t, os.WriteFile(pubFile, []byte(vkey+"\n"), 0o644))

	ids := append(eventIDs(t, db, "b1"), eventIDs(t, db, "b3")...)
	for i, id := range []string{ids[0], ids[5], ids[len(ids)-1]} {
		bundle := filepath.Join(dir, fmt.Sprintf("b%d.json", i))
		code, _, errOut := runCLI(t, "prove", id, "--db", db, "--out", bundle)
		require.Equal(t, 0, code, errOut)
		// The verifier key as text and as a file.
		for _, k := range []string{vkey, pubFile} {
			code, out, errOut := runCLI(t, "verify-proof", bundle, "--key", k)
			require.Equal(t, 0, code, out+errOut)
			assert.Regexp(t, `^OK: the event is entry \d+ of stream default, included in the checkpoint of size 51 signed by audit.example/prove\.\n$`, out)
		}
		// --since adds the consistency proof from the older checkpoint.
		withSince := filepath.Join(dir, fmt.Sprintf("s%d.json", i))
		code, out, errOut := runCLI(t, "prove", id, "--db", db, "--since", older)
		require.Equal(t, 0, code, errOut)
		require.NoError(t, os.WriteFile(withSince, []byte(out), 0o644))
		var b merkle.Bundle
		require.NoError(t, json.Unmarshal([]byte(out), &b))
		require.NotNil(t, b.Consistency)
		code, out, errOut = runCLI(t, "verify-proof", withSince, "--key", vkey)
		require.Equal(t, 0, code, out+errOut)
		assert.Contains(t, out, fmt.Sprintf(", which extends the checkpoint of size %v.", first["size"]))

		// Altered bundles fail, with the reason.
		for name, alter := range map[string]func(*merkle.Bundle){
			"document":  func(b *merkle.Bundle) { b.Document = strings.Replace(b.Document, `"name":"`, `"name":"x`, 1) },
			"sequence":  func(b *merkle.Bundle) { b.Sequence++ },
			"inclusion": func(b *merkle.Bundle) { b.Inclusion[0][0] ^= 1 },
			"consistency": func(b *merkle.Bundle) {
				b.Consistency.Proof[len(b.Consistency.Proof)-1][0] ^= 1
			},
		} {
			var c merkle.Bundle
			require.NoError(t, json.Unmarshal([]byte(mustRead(t, withSince)), &c))
			alter(&c)
			bad := filepath.Join(dir, "bad.json")
			data, _ := json.Marshal(c)
			require.NoError(t, os.WriteFile(bad, data, 0o644))
			code, out, _ := runCLI(t, "verify-proof", bad, "--key", vkey)
			assert.Equal(t, 1, code, name)
			assert.True(t, strings.HasPrefix(out, "FAILED: "), "%s: %s", name, out)
		}
	}

	// Another key does not verify the bundle; usage errors exit 2.
	_, other := keygen(t, dir, "other")
	code, out, _ := runCLI(t, "verify-proof", filepath.Join(dir, "b0.json"), "--key", other)
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "FAILED: merkle: checkpoint signature")
	code, _, _ = runCLI(t, "verify-proof", filepath.Join(dir, "b0.json"))
	assert.Equal(t, 2, code, "--key is required")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "junk.json"), []byte("{"), 0o644))
	code, out, _ = runCLI(t, "verify-proof", filepath.Join(dir, "junk.json"), "--key", vkey)
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "FAILED: the bundle is not valid JSON")

	// Events no checkpoint covers yet, and unknown ids, cannot be proven.
	exportRuns(t, db, "", nil, "b4")
	code, _, errOut := runCLI(t, "prove", eventIDs(t, db, "b4")[0], "--db", db)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "is not covered by a checkpoint yet")
	code, _, errOut = runCLI(t, "prove", "no-such-event", "--db", db)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "no stored event has id no-such-event")
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

// TestKeyRotation follows docs/integrity.md: list the old and the new key
// (every checkpoint is co-signed, so holders of either key verify it),
// hand out the new verifier key, then drop the old key. A trail's
// checkpoints from before and after need both verifier keys.
func TestKeyRotation(t *testing.T) {
	dir := t.TempDir()
	oldKey, oldV := keygen(t, dir, "old")
	newKey, newV := keygen(t, dir, "new")
	_, otherV := keygen(t, dir, "other")

	// A trail signed by both keys throughout: either key verifies all of it.
	both, bothPub := filepath.Join(dir, "both.db"), filepath.Join(dir, "both.jsonl")
	exportRuns(t, both, bothPub, []string{oldKey, newKey}, "b1", "b2")
	code, note, _ := runCLI(t, "checkpoint", "--db", both)
	require.Equal(t, 0, code)
	assert.Equal(t, 2, strings.Count(note, "\n\u2014 "), "co-signed by both keys:\n%s", note)
	assert.Contains(t, note, "\u2014 audit.example/old ")
	assert.Contains(t, note, "\u2014 audit.example/new ")
	bundle := filepath.Join(dir, "bundle.json")
	code, _, errOut := runCLI(t, "prove", eventIDs(t, both, "b2")[3], "--db", both, "--out", bundle)
	require.Equal(t, 0, code, errOut)
	for _, v := range []string{oldV, newV} {
		code, out, errOut := runCLI(t, "verify-proof", bundle, "--key", v)
		assert.Equal(t, 0, code, out+errOut)
		code, out, errOut = runCLI(t, "verify", "--db", both, "--key", v, "--checkpoints", bothPub)
		assert.Equal(t, 0, code, "verify with %s: %s%s", v, out, errOut)
	}
	code, out, _ := runCLI(t, "verify-proof", bundle, "--key", otherV)
	assert.Equal(t, 1, code, out)
	code, out, _ = runCLI(t, "verify", "--db", both, "--key", otherV, "--checkpoints", bothPub)
	assert.Equal(t, 1, code, out)

	// A rotation: the old key alone, then both (the exporter proves the
	// co-signed tree consistent with the old key's checkpoint), then the
	// new key alone.
	db, published := filepath.Join(dir, "audit.db"), filepath.Join(dir, "checkpoints.jsonl")
	exportRuns(t, db, published, []string{oldKey}, "b1")
	exportRuns(t, db, published, []string{oldKey, newKey}, "b2")
	code, note, _ = runCLI(t, "checkpoint", "--db", db)
	require.Equal(t, 0, code)
	assert.Equal(t, 2, strings.Count(note, "\n\u2014 "), note)
	exportRuns(t, db, published, []string{newKey}, "b3")
	code, note, _ = runCLI(t, "checkpoint", "--db", db)
	require.Equal(t, 0, code)
	assert.Equal(t, 1, strings.Count(note, "\n\u2014 "), note)
	assert.Contains(t, note, "\u2014 audit.example/new ")
	// Both verifier keys verify every checkpoint of the trail; either one
	// alone leaves the other period's checkpoints unverified, which is a
	// failure (an unknown key is what a forger would sign with).
	code, out, errOut = runCLI(t, "verify", "--db", db, "--key", oldV, "--key", newV, "--checkpoints", published)
	assert.Equal(t, 0, code, out+errOut)
	assert.Contains(t, out, "the latest covers 51")
	for _, v := range []string{oldV, newV} {
		code, out, _ = runCLI(t, "verify", "--db", db, "--key", v, "--checkpoints", published, "--output", "json")
		assert.Equal(t, 1, code)
		assert.Contains(t, out, `"kind": "forged_checkpoint"`)
	}
}
