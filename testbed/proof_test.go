package testbed

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchaudit/batchaudit/signing"
	"github.com/batchaudit/batchaudit/store/merkle"
	"github.com/batchaudit/batchaudit/testbed/harness"
)

// TestProofBundlesOffline proves events of a trail the built collector
// wrote with `batchaudit prove` (with and without --since), and checks
// the bundles offline with the Go CLI (verify-proof) and with the Python
// verifier of docs/integrity.md (docs/verify_proof.py, run by the test
// venv's interpreter): both accept every good bundle and reject every
// corruption of one.
func TestProofBundlesOffline(t *testing.T) {
	root, err := harness.RepoRoot()
	require.NoError(t, err)
	py, script := python(t), filepath.Join(root, "docs", "verify_proof.py")
	cli := harness.Binary(t, "BATCHAUDIT_CLI", "batchaudit")
	dir := t.TempDir()
	tr := writeSignedTrail(t, dir, "    sqlite:\n      path: {{DIR}}/audit.db\n")
	db := filepath.Join(dir, "audit.db")

	// The oldest published checkpoint, for --since.
	published := readPublished(t, tr.checkpoints)
	oldest := int64(-1)
	for size := range published {
		if oldest < 0 || size < oldest {
			oldest = size
		}
	}
	since := filepath.Join(dir, "since.note")
	require.NoError(t, os.WriteFile(since, []byte(published[oldest]), 0o644))

	// Events at the start, in every tile, and at the end of the stream.
	s := openSQLite(t, dir)
	var ids []string
	var last int64
	require.NoError(t, s.DB().QueryRow(`SELECT max(sequence) FROM events`).Scan(&last))
	for _, seq := range []int64{1, 2, 255, 256, 257, oldest, last / 2, last} {
		var id string
		if err := s.DB().QueryRow(`SELECT id FROM events WHERE sequence = ?`, seq).Scan(&id); err == nil {
			ids = append(ids, id)
		}
	}
	require.GreaterOrEqual(t, len(ids), 6)

	pyCheck := func(bundle string, extra ...string) (bool, string) {
		cmd := exec.Command(py, append([]string{script, bundle, tr.verifier}, extra...)...)
		out, err := cmd.CombinedOutput()
		code := cmd.ProcessState.ExitCode()
		require.True(t, err == nil || code == 1, "verify_proof.py: %v\n%s", err, out)
		return code == 0, string(out)
	}
	goCheck := func(bundle string, extra ...string) (bool, string) {
		cmd := exec.Command(cli, append([]string{"verify-proof", bundle, "--key", tr.verifier}, extra...)...)
		out, err := cmd.CombinedOutput()
		code := cmd.ProcessState.ExitCode()
		require.True(t, err == nil || code == 1, "verify-proof: %v\n%s", err, out)
		return code == 0, string(out)
	}

	var good []string
	for i, id := range ids {
		for _, withSince := range []bool{false, true} {
			path := filepath.Join(dir, fmt.Sprintf("bundle-%d-%v.json", i, withSince))
			args := []string{"prove", id, "--db", db, "--out", path}
			if withSince {
				args = append(args, "--since", since)
			}
			harness.RunCommand(t, time.Minute, nil, cli, args...)
			ok, out := pyCheck(path)
			assert.True(t, ok, "python rejects a good bundle %s: %s", path, out)
			if withSince {
				assert.Contains(t, out, fmt.Sprintf("extends the checkpoint of size %d", oldest))
			}
			ok, out = goCheck(path)
			assert.True(t, ok, "verify-proof rejects a good bundle: %s", out)
			good = append(good, path)
		}
	}

	// A checkpoint the collector's key really signed, but for another log
	// (origin) or for another tree of the same size (a fork).
	signer, err := signing.LoadSigner(tr.signerKey)
	require.NoError(t, err)
	resign := func(note string, change func(*merkle.Checkpoint)) string {
		c, err := merkle.ParseBody(merkle.Text(note))
		require.NoError(t, err)
		change(&c)
		msg, err := c.Sign(signer)
		require.NoError(t, err)
		return string(msg)
	}
	flipHash := func(b64 string) string {
		h, err := base64.StdEncoding.DecodeString(b64)
		require.NoError(t, err)
		h[len(h)/2] ^= 0x20
		return base64.StdEncoding.EncodeToString(h)
	}
	corruptions := map[string]func(b map[string]any){
		"document byte": func(b map[string]any) {
			d := []byte(b["document"].(string))
			i := bytes.Index(d, []byte(`"name":"`)) + len(`"name":"`)
			d[i] ^= 0x01
			b["document"] = string(d)
		},
		"document and hash": func(b map[string]any) {
			d := strings.Replace(b["document"].(string), `"name":"`, `"name":"x`, 1)
			b["document"], b["hash"] = d, sha256Hex([]byte(d))
		},
		"hash": func(b map[string]any) {
			h := []byte(b["hash"].(string))
			h[0] = map[bool]byte{true: '1', false: '0'}[h[0] == '0']
			b["hash"] = string(h)
		},
		"sequence": func(b map[string]any) { b["sequence"] = b["sequence"].(float64) + 1 },
		"kind":     func(b map[string]any) { b["kind"] = "dead_letter" },
		"stream":   func(b map[string]any) { b["stream"] = "other" },
		"inclusion hash": func(b map[string]any) {
			p := b["inclusion"].([]any)
			p[len(p)-1] = flipHash(p[len(p)-1].(string))
		},
		"inclusion hash dropped": func(b map[string]any) {
			p := b["inclusion"].([]any)
			b["inclusion"] = p[:len(p)-1]
		},
		"checkpoint signature": func(b map[string]any) {
			n := b["checkpoint"].(string)
			i := strings.LastIndex(n, " ") + 10
			b["checkpoint"] = n[:i] + map[bool]string{true: "B", false: "A"}[n[i] == 'A'] + n[i+1:]
		},
		"checkpoint size": func(b map[string]any) {
			n := b["checkpoint"].(string)
			lines := strings.SplitN(n, "\n", 3)
			b["checkpoint"] = lines[0] + "\n" + lines[1] + "0\n" + lines[2]
		},
		"checkpoint origin": func(b map[string]any) {
			b["checkpoint"] = resign(b["checkpoint"].(string), func(c *merkle.Checkpoint) { c.Origin = "elsewhere/" + b["stream"].(string) })
		},
		"checkpoint of another tree": func(b map[string]any) {
			b["checkpoint"] = resign(b["checkpoint"].(string), func(c *merkle.Checkpoint) { c.Root[3] ^= 1 })
		},
		"consistency proof hash": func(b map[string]any) {
			p := b["consistency"].(map[string]any)["proof"].([]any)
			p[0] = flipHash(p[0].(string))
		},
		"consistency from a fork": func(b map[string]any) {
			c := b["consistency"].(map[string]any)
			c["from"] = resign(c["from"].(string), func(c *merkle.Checkpoint) { c.Root[0] ^= 1 })
		},
		"consistency from another size": func(b map[string]any) {
			c := b["consistency"].(map[string]any)
			for size, note := range published {
				if size != oldest {
					c["from"] = note
					break
				}
			}
		},
	}
	rejected := 0
	for i, path := range good {
		withSince := strings.HasSuffix(path, "-true.json")
		for name, corrupt := range corruptions {
			if strings.HasPrefix(name, "consistency") != withSince {
				continue
			}
			var b map[string]any
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			require.NoError(t, json.Unmarshal(data, &b))
			if name == "consistency from another size" && len(published) < 2 {
				continue
			}
			if name == "inclusion hash" || name == "inclusion hash dropped" {
				if len(b["inclusion"].([]any)) == 0 {
					continue // a tree of one leaf has an empty path
				}
			}
			corrupt(b)
			bad := filepath.Join(dir, fmt.Sprintf("bad-%d.json", i))
			data, err = json.Marshal(b)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(bad, data, 0o644))
			ok, out := pyCheck(bad)
			assert.False(t, ok, "python accepts a bundle with %s corrupted (%s): %s", name, path, out)
			assert.Contains(t, out, "FAILED")
			ok, out = goCheck(bad)
			assert.False(t, ok, "verify-proof accepts a bundle with %s corrupted: %s", name, out)
			rejected++
		}
	}
	// The right key for the wrong origin prefix.
	ok, out := pyCheck(good[0], "--origin-prefix", "elsewhere/")
	assert.False(t, ok, out)
	ok, out = goCheck(good[0], "--origin-prefix", "elsewhere/")
	assert.False(t, ok, out)
	// Another key.
	_, otherPub := signingKey(t, dir, "other")
	cmd := exec.Command(py, script, good[0], otherPub)
	out2, _ := cmd.CombinedOutput()
	assert.Equal(t, 1, cmd.ProcessState.ExitCode(), "%s", out2)
	assert.Contains(t, string(out2), "not signed by batchaudit-test/other")
	t.Logf("%d good bundles accepted, %d corrupted ones rejected, by Python and Go", len(good), rejected)
}
