package testbed

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batchaudit/batchaudit/store/verify"
	"github.com/batchaudit/batchaudit/testbed/harness"
)

// Helpers for trails written with signed checkpoints (docs/integrity.md):
// a key made by `batchaudit keygen`, the exporter's checkpoints section,
// and `batchaudit verify --key --checkpoints` run as a user would.

// signingKey makes a signer key in dir with the CLI and returns the key
// file and a file holding the verifier key keygen printed.
func signingKey(t testing.TB, dir, name string) (keyFile, verifierFile string) {
	t.Helper()
	keyFile = filepath.Join(dir, name+".key")
	out := harness.RunCommand(t, time.Minute, nil, harness.Binary(t, "BATCHAUDIT_CLI", "batchaudit"),
		"keygen", "--name", "batchaudit-test/"+name, "--out", keyFile)
	vkey := ""
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "batchaudit-test/"+name+"+") {
			vkey = strings.TrimSpace(line)
		}
	}
	require.NotEmpty(t, vkey, "keygen printed no verifier key: %s", out)
	verifierFile = filepath.Join(dir, name+".pub")
	require.NoError(t, os.WriteFile(verifierFile, []byte(vkey+"\n"), 0o644))
	return keyFile, verifierFile
}

// checkpointsSection is the exporter's checkpoints section (indented for
// the pipeline's {{EXPORTER}}): signed every interval or maxEvents entries,
// published to file.
func checkpointsSection(file string, interval string, maxEvents int, keyFiles ...string) string {
	return fmt.Sprintf("    checkpoints:\n      key_files: [%s]\n      file: %s\n      interval: %s\n      max_events: %d\n",
		strings.Join(keyFiles, ", "), file, interval, maxEvents)
}

// verifyOutput is `batchaudit verify --output json`.
type verifyOutput struct {
	OK       bool                   `json:"ok"`
	Streams  []verify.StreamSummary `json:"streams"`
	Runs     int                    `json:"runs"`
	Problems []verify.Problem       `json:"problems"`
}

// failing returns the problems that make the trail not intact.
func (v *verifyOutput) failing() []verify.Problem {
	var out []verify.Problem
	for _, p := range v.Problems {
		if p.Failing() {
			out = append(out, p)
		}
	}
	return out
}

// runVerify runs the CLI's verify with the verifier key and the published
// checkpoint file on the trail that store (e.g. "--db", path) names, and
// returns its report and exit code. Exit 0 must mean ok, 1 not ok.
func runVerify(t testing.TB, verifierFile, checkpoints string, storeArgs ...string) (verifyOutput, int) {
	t.Helper()
	args := append([]string{"verify", "--output", "json", "--key", verifierFile, "--checkpoints", checkpoints}, storeArgs...)
	cmd := exec.Command(harness.Binary(t, "BATCHAUDIT_CLI", "batchaudit"), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := cmd.ProcessState.ExitCode()
	if err != nil && code != 1 {
		t.Fatalf("batchaudit %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	var out verifyOutput
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &out), "verify output: %s\n%s", stdout.String(), stderr.String())
	require.Equal(t, out.OK, code == 0, "exit code %d with ok=%v", code, out.OK)
	return out, code
}

// requireIntact asserts that verify finds nothing wrong (no false alarm)
// and that the published checkpoints cover the whole stream.
func requireIntact(t testing.TB, verifierFile, checkpoints string, storeArgs ...string) verifyOutput {
	t.Helper()
	out, code := runVerify(t, verifierFile, checkpoints, storeArgs...)
	require.Equal(t, 0, code, "verify of an untampered trail: %+v", out.Problems)
	require.Empty(t, out.failing())
	require.NotEmpty(t, out.Streams)
	for _, s := range out.Streams {
		require.Positive(t, s.Checkpoints, "stream %s has signed checkpoints", s.Stream)
		require.Equal(t, s.Entries, s.Covered, "the final checkpoint covers stream %s", s.Stream)
	}
	return out
}
