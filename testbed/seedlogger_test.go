package testbed

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/testbed/harness"
)

// seedModules extracts the Python modules of the seed 000 pipeline ("How to
// Build Batch Audit": audit_models, audit_logger, change_detector,
// lineage_tracker, batch_processor) from the seed document into a fresh
// directory, unchanged. The seeds are read where CI has them: ../shared
// beside the repository (BATCHAUDIT_SHARED overrides).
func seedModules(t *testing.T) string {
	t.Helper()
	root, err := harness.RepoRoot()
	require.NoError(t, err)
	var doc string
	for _, shared := range []string{os.Getenv("BATCHAUDIT_SHARED"), filepath.Join(root, "..", "shared"), filepath.Join(root, "..", "..", "shared")} {
		if shared == "" {
			continue
		}
		if m, _ := filepath.Glob(filepath.Join(shared, "seeds", "000_*.txt")); len(m) == 1 {
			doc = m[0]
			break
		}
	}
	if doc == "" {
		t.Fatalf("seed 000 not found in ../shared/seeds beside the repository (%s); set BATCHAUDIT_SHARED", root)
	}
	text, err := os.ReadFile(doc)
	require.NoError(t, err)
	dir := t.TempDir()
	var found []string
	for _, m := range regexp.MustCompile("(?s)```python\n# (\\w+\\.py)\n(.*?)```").FindAllSubmatch(text, -1) {
		name := string(m[1])
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), append([]byte("# "+name+"\n"), m[2]...), 0o600))
		found = append(found, name)
	}
	for _, need := range []string{"audit_models.py", "audit_logger.py", "change_detector.py", "lineage_tracker.py", "batch_processor.py"} {
		require.Contains(t, found, need, "module of the seed pipeline in %s", doc)
	}
	return dir
}

// seedRun is what the seed pipeline reports about one run (seed_pipeline.py).
type seedRun struct {
	BatchID  string   `json:"batch_id"`
	Status   string   `json:"status"`
	Read     int64    `json:"read"`
	Written  int64    `json:"written"`
	Skipped  int64    `json:"skipped"`
	Errored  int64    `json:"errored"`
	Accepted []string `json:"accepted"`
}

// TestSeedPipelineAsClient runs the seed 000 pipeline — its own AuditLogger
// posting AuditEvent.to_dict() arrays from two threads, its own
// AuditedBatchProcessor — twice over the same orders against the built
// collector with basic auth, and checks: every event it sent is stored, the
// run summary equals the counts the pipeline itself reports, the second run's
// writes are classified no_change, no finding on these clean runs, and the
// stored principal is the authenticated user, not the actor the job claims.
func TestSeedPipelineAsClient(t *testing.T) {
	root, err := harness.RepoRoot()
	require.NoError(t, err)
	modules := seedModules(t)
	py := python(t)
	dir := t.TempDir()
	c := harness.StartCollector(t, dir, harness.NewPorts(t), authConfig())
	var runs []seedRun
	for i := 0; i < 2; i++ {
		out := filepath.Join(dir, fmt.Sprintf("run%d.json", i))
		harness.RunCommand(t, 2*time.Minute, nil, py, filepath.Join(root, "testbed/python/seed_pipeline.py"),
			modules, c.HTTPEndpoint(), "loader:s3cret", out)
		b, err := os.ReadFile(out)
		require.NoError(t, err)
		var r seedRun
		require.NoError(t, json.Unmarshal(b, &r))
		runs = append(runs, r)
	}
	waitSettled(t, c)
	c.Stop()

	s := openSQLite(t, dir)
	for i, want := range runs {
		require.Equal(t, "completed", want.Status)
		evs := runEvents(t, s, want.BatchID)
		var stored []string
		for _, e := range evs {
			require.NoError(t, e.Validate())
			if e.DerivedBy != "" {
				continue
			}
			stored = append(stored, e.ID)
			assert.Equal(t, "loader", e.AuthPrincipal, "the authenticated principal")
			assert.Equal(t, "scheduler@example.com", e.Actor.ID, "the actor the job claims, kept apart")
			if e.Name == auditevent.RecordWrite {
				assert.Equal(t, auditevent.HashCheckPythonJSON, e.HashCheck, "the seed hashes json.dumps(sort_keys=True)")
				assert.NotEmpty(t, e.SenderHash)
			}
		}
		slices.Sort(stored)
		sent := slices.Clone(want.Accepted)
		slices.Sort(sent)
		assert.Equal(t, sent, stored, "run %d: every event the pipeline sent is stored", i)

		run := findRun(t, s, want.BatchID)
		assert.Equal(t, "daily_order_processing", run.JobName, "the batch end's job comes from its run")
		assert.Equal(t, auditevent.ResultSuccess, run.Status)
		assert.Equal(t, [4]int64{want.Read, want.Written, want.Skipped, want.Errored},
			[4]int64{run.Read, run.Written, run.Skipped, run.Errored}, "run %d: the pipeline's own counts", i)
		assert.Equal(t, []string{"loader"}, run.Principals)
		assert.NotEmpty(t, run.ConfigHash, "the job configuration from the batch start's metadata")
		assert.Zero(t, run.Findings, "run %d: a clean run has no findings", i)
		byName := countByName(evs)
		assert.Equal(t, int(want.Written), byName[auditevent.LineageRecord], "a lineage record per write")
		assert.Equal(t, 1, byName[auditevent.LineageDataset])
		assert.Zero(t, byName[auditevent.Finding])
		if i == 0 {
			assert.Equal(t, want.Written, run.Inserted)
		} else {
			assert.Equal(t, [2]int64{0, want.Written}, [2]int64{run.Inserted, run.Unchanged}, "the identical second run changes nothing")
		}
	}
	assert.Equal(t, runs[0].Read, int64(30))
	assert.Positive(t, runs[0].Skipped)
	assert.Equal(t, int64(1), runs[0].Errored)

	out := harness.RunCommand(t, time.Minute, nil, harness.Binary(t, "BATCHAUDIT_CLI", "batchaudit"),
		"runs", "--context", "--db", filepath.Join(dir, "audit.db"))
	assert.Regexp(t, `daily_order_processing\s+success\s+-\s+-\s+-\s+[0-9a-f]{12}\s+loader`, out)
}
