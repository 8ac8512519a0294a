package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchaudit/batchaudit/internal/estest"
	"github.com/batchaudit/batchaudit/signing"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/esstore"
	"github.com/batchaudit/batchaudit/store/merkle"
	"github.com/batchaudit/batchaudit/store/sqlitestore"
	"github.com/batchaudit/batchaudit/store/storetest"
)

// oldTrail writes, through the SQLite write path, a run 800 days old, a dead
// letter of the same day and a run of yesterday; the stored (ingest) times
// are set back too, as a trail written then would have them. It returns the
// database, the checkpoint signer key file, its verifier key and the
// checkpoint file a collector would publish.
func oldTrail(t *testing.T) (db, key, pub, published string) {
	dir := t.TempDir()
	db = filepath.Join(dir, "audit.db")
	old := time.Now().UTC().Add(-800 * 24 * time.Hour).Truncate(time.Second)
	young := time.Now().UTC().Add(-24 * time.Hour).Truncate(time.Second)
	s, err := sqlitestore.Open(context.Background(), db)
	require.NoError(t, err)
	defer s.Close()
	_, err = s.Write(context.Background(), "default", storetest.Stored(storetest.RunEvents("b-old", old)...))
	require.NoError(t, err)
	bad := storetest.Stored(storetest.RunEvents("b-dl", old)[1])
	bad[0].DeadLetterReason = "invalid batchaudit.record.read: batchaudit.record.id: is required"
	_, err = s.Write(context.Background(), "default", bad)
	require.NoError(t, err)
	for _, table := range []string{"events", "dead_letters"} {
		_, err = s.DB().Exec(`UPDATE `+table+` SET ingested = ?`, old.Add(time.Minute).UnixNano())
		require.NoError(t, err)
	}
	_, err = s.Write(context.Background(), "default", storetest.Stored(storetest.RunEvents("b-young", young)...))
	require.NoError(t, err)

	key = filepath.Join(dir, "checkpoints.key")
	code, out, errOut := runCLI(t, "keygen", "--name", "checkpoints.test", "--out", key)
	require.Equal(t, 0, code, errOut)
	pub = strings.TrimSpace(out)
	published = filepath.Join(dir, "checkpoints.jsonl")
	return db, key, pub, published
}

// signCheckpoint signs the stream's tree as the exporter does: kept in the
// store and appended to the published file.
func signCheckpoint(t *testing.T, db, key, published string, final bool) {
	s, err := sqlitestore.Open(context.Background(), db)
	require.NoError(t, err)
	defer s.Close()
	tree, err := s.Tree(context.Background(), "default")
	require.NoError(t, err)
	signer, err := signing.LoadSigner(key)
	require.NoError(t, err)
	msg, err := merkle.Checkpoint{Origin: "batchaudit/default", Size: tree.N, Root: tree.Hash}.Sign(signer)
	require.NoError(t, err)
	require.NoError(t, s.PutCheckpoint(context.Background(), store.StoredCheckpoint{Stream: "default", Size: tree.N,
		Root: hex.EncodeToString(tree.Hash[:]), Note: string(msg), Created: time.Now()}))
	require.NoError(t, merkle.AppendPublished(published, merkle.Published{Stream: "default", Size: tree.N, Note: string(msg), Final: final}))
}

func TestRetentionCommand(t *testing.T) {
	db, key, pub, published := oldTrail(t)

	code, _, errOut := runCLI(t, "retention", "--db", db, "--key", key)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "--older-than is required (e.g. 400d)")
	code, _, errOut = runCLI(t, "retention", "--db", db, "--older-than", "400d")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "--key SIGNER_KEY_FILE is required")

	// Inside the minimum (12 months by default, or as configured): refused.
	code, _, errOut = runCLI(t, "retention", "--db", db, "--key", key, "--older-than", "90d")
	assert.Equal(t, exitFail, code)
	assert.Contains(t, errOut, "batchaudit retention: stream default: retention refused: the retention period 90d is inside the minimum retention of 366d")
	code, _, errOut = runCLI(t, "retention", "--db", db, "--key", key, "--older-than", "3y", "--min-retention", "2557d")
	assert.Equal(t, exitUsage, code, "3y is no duration")
	code, _, errOut = runCLI(t, "retention", "--db", db, "--key", key, "--older-than", "400d", "--min-retention", "2190d")
	assert.Equal(t, exitFail, code)
	assert.Contains(t, errOut, "the retention period 400d is inside the minimum retention of 2190d")

	// No signed checkpoint covers the old entries: refused, naming them.
	code, _, errOut = runCLI(t, "retention", "--db", db, "--key", key, "--older-than", "400d")
	assert.Equal(t, exitFail, code)
	assert.Contains(t, errOut, "retention refused: entries #1..#18 of stream default are older than the cutoff, but no signed checkpoint covers them (the latest covers 0 entries)")

	signCheckpoint(t, db, key, published, false)
	code, out, errOut := runCLI(t, "retention", "--db", db, "--key", key, "--checkpoints", published, "--older-than", "400d", "--dry-run")
	require.Equal(t, exitOK, code, errOut)
	assert.Regexp(t, `^stream default: would remove entries #1..#18 \(18 entries, 1 run summaries\) older than 400d \(before \S+\); the signed checkpoint of size 35 covers them\n`+
		`  kept from #19: entry #19 is from \S+, not older than the cutoff\n  runs: b-old\n$`, out)

	code, out, errOut = runCLI(t, "retention", "--db", db, "--key", key, "--checkpoints", published, "--older-than", "400d", "--actor", "alice")
	require.Equal(t, exitOK, code, errOut)
	assert.Regexp(t, `^stream default: removed entries #1..#18 \(18 entries, 1 run summaries\) older than 400d`, out)
	assert.Regexp(t, `  recorded as batchaudit.retention.prune event \S+ at #36, signed in the checkpoint of size 36\n`, out)

	// verify passes with the verifier key and the published checkpoints,
	// and reports the pruned range.
	code, out, errOut = runCLI(t, "verify", "--db", db, "--key", pub, "--checkpoints", published)
	require.Equal(t, exitOK, code, out+errOut)
	assert.Regexp(t, `stream default: 18 entries \(18 events, 0 dead letters, 0 gaps\), root [0-9a-f]{64}; 2 signed checkpoints, the latest covers 36\n`+
		`stream default: entries 1..18 pruned by retention \(batchaudit.retention.prune at #36, event \S+, cutoff \S+\); their leaves in the tiles give the signed roots\n`+
		`runs: 1 summaries compared with their events\nOK: `, out)
	code, out, _ = runCLI(t, "verify", "--db", db, "--key", pub, "--checkpoints", published, "--json")
	require.Equal(t, exitOK, code)
	var rep struct {
		Streams []struct {
			Pruned struct {
				Through  int64 `json:"through"`
				Sequence int64 `json:"sequence"`
			} `json:"pruned"`
		} `json:"streams"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	assert.Equal(t, int64(18), rep.Streams[0].Pruned.Through)
	assert.Equal(t, int64(36), rep.Streams[0].Pruned.Sequence)

	// The retention event is in the trail, with who ran it.
	code, out, _ = runCLI(t, "events", "--db", db, "--name", "retention.prune", "--json")
	require.Equal(t, exitOK, code)
	assert.Contains(t, out, `"user.id": "alice"`)
	assert.Contains(t, out, `"batchaudit.retention.through_sequence": 18`)
	assert.Contains(t, out, `"batchaudit.retention.minimum": "366d"`)

	// A proof bundle of a remaining event, and of the retention event,
	// verifies offline.
	for _, id := range []string{storetest.RunEvents("b-young", time.Time{})[4].ID, retentionEventID(t, db)} {
		bundle := filepath.Join(t.TempDir(), "proof.json")
		code, _, errOut = runCLI(t, "prove", "--db", db, id, "--out", bundle)
		require.Equal(t, exitOK, code, errOut)
		code, out, errOut = runCLI(t, "verify-proof", bundle, "--key", pub)
		require.Equal(t, exitOK, code, out+errOut)
		assert.Contains(t, out, "included in the checkpoint of size 36")
	}
	// A pruned event has no proof any more; its leaf is still in the tiles.
	code, _, errOut = runCLI(t, "prove", "--db", db, storetest.RunEvents("b-old", time.Time{})[4].ID)
	assert.Equal(t, exitFail, code)
	assert.Contains(t, errOut, "no stored event has id")

	// Deleting more by hand is reported.
	s, err := sqlitestore.Open(context.Background(), db)
	require.NoError(t, err)
	_, err = s.DB().Exec(`DELETE FROM events WHERE stream = 'default' AND sequence IN (19, 20)`)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	code, out, _ = runCLI(t, "verify", "--db", db, "--key", pub, "--checkpoints", published)
	assert.Equal(t, exitFail, code)
	assert.Contains(t, out, "BROKEN missing: default #19: no entry holds this sequence; the stream's retention event at #36 records entries up to #18 as pruned\n")
	assert.Contains(t, out, "BROKEN missing: default #20: ")
	assert.Contains(t, out, "entries 1..18 pruned by retention")
}

func retentionEventID(t *testing.T, db string) string {
	s, err := sqlitestore.Open(context.Background(), db)
	require.NoError(t, err)
	defer s.Close()
	var id string
	require.NoError(t, s.DB().QueryRow(`SELECT id FROM events WHERE name = 'batchaudit.retention.prune'`).Scan(&id))
	return id
}

func TestRetentionCheckpointFileWritten(t *testing.T) {
	db, key, _, published := oldTrail(t)
	signCheckpoint(t, db, key, published, true)
	code, _, errOut := runCLI(t, "retention", "--db", db, "--key", key, "--checkpoints", published, "--older-than", "400d", "--json")
	require.Equal(t, exitOK, code, errOut)
	data, err := os.ReadFile(published)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	require.Len(t, lines, 2)
	var last struct {
		Stream string `json:"stream"`
		Size   int64  `json:"size"`
		Note   string `json:"note"`
		Final  bool   `json:"final"`
	}
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &last))
	assert.Equal(t, "default", last.Stream)
	assert.Equal(t, int64(36), last.Size)
	assert.False(t, last.Final, "SQLite: a collector may write on")
	assert.True(t, strings.HasPrefix(last.Note, "batchaudit/default\n36\n"))
}

// TestESSetupILM: the real test node has no ILM; setup says so and sets up
// the rest. A delete phase inside the minimum retention is refused.
func TestESSetupILM(t *testing.T) {
	c := estest.Require(t)
	prefix := estest.UniqueName(t, "ilm")
	estest.TrackStore(t, c, prefix+"-*", esstore.Indices(prefix)...)
	conn := []string{"es", "setup", "--es", estest.URL(), "--es-prefix", prefix, "--no-roles"}
	code, _, errOut := runCLI(t, append(conn, "--ilm", "--ilm-delete-after", "90d")...)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "--ilm-delete-after 90d must be whole days, at least --min-retention 366d")
	code, out, errOut := runCLI(t, append(conn, "--ilm")...)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "ILM policy batchaudit-retention NOT installed: the cluster has no index lifecycle management (no handler for _ilm: the x-pack-ilm module is not loaded)\n")
	assert.Contains(t, out, "Index "+esstore.EventsIndex(prefix)+": template installed")
}

// TestRetentionCommandOnElasticsearch: the command on the real node, on a
// trail of this week (its entries were all stored now, so nothing is old
// enough): checkpoints are checked, and nothing is removed or written.
func TestRetentionCommandOnElasticsearch(t *testing.T) {
	c := estest.Require(t)
	prefix := estest.UniqueName(t, "ret")
	estest.TrackStore(t, c, prefix+"-*", esstore.Indices(prefix)...)
	cfg := esstore.NewDefaultConfig()
	cfg.Endpoints, cfg.IndexPrefix = []string{estest.URL()}, prefix
	s, err := esstore.New(context.Background(), cfg, nil)
	require.NoError(t, err)
	defer s.Close()
	_, err = s.Write(context.Background(), "default", storetest.Stored(storetest.RunEvents("b1", time.Now().Add(-800*24*time.Hour))...))
	require.NoError(t, err)
	dir := t.TempDir()
	key := filepath.Join(dir, "checkpoints.key")
	code, _, errOut := runCLI(t, "keygen", "--name", "checkpoints.test", "--out", key)
	require.Equal(t, 0, code, errOut)
	conn := []string{"retention", "--es", estest.URL(), "--es-prefix", prefix, "--key", key, "--older-than", "400d"}
	code, out, errOut := runCLI(t, conn...)
	require.Equal(t, exitOK, code, errOut)
	assert.Regexp(t, `^stream default: nothing to remove older than 400d \(before \S+\): entry #1 is from \S+, not older than the cutoff\n$`, out,
		"old event times, but stored now: old by both clocks is needed")
	last, err := s.LastSequence(context.Background(), "default")
	require.NoError(t, err)
	assert.Equal(t, int64(17), last)
}
