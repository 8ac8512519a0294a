package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/sqlitestore"
	"github.com/batchaudit/batchaudit/store/storetest"
)

func TestRunsContextAndChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	s, err := sqlitestore.Open(context.Background(), path)
	require.NoError(t, err)
	for i, v := range []string{"abc123", "abc123", "def456"} {
		evs := storetest.RunEvents(fmt.Sprint("r", i), storetest.T0.Add(time.Duration(i)*time.Hour))
		evs[0].JobVersion, evs[0].JobConfigHash, evs[0].RunType = v, strings.Repeat("c", 64), "normal"
		evs[0].AuthPrincipal = "loader"
		_, err := s.Write(context.Background(), "default", storetest.Stored(evs...))
		require.NoError(t, err)
	}
	require.NoError(t, s.Close())

	code, out, errOut := runCLI(t, "runs", "--db", path, "--context")
	require.Equal(t, 0, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 4)
	assert.Regexp(t, `^START\s+BATCH ID\s+JOB\s+STATUS\s+TYPE\s+LOGICAL DATE\s+VERSION\s+CONFIG\s+PRINCIPAL$`, lines[0])
	assert.Regexp(t, `\sr0\s+orders-clean\s+success\s+normal\s+-\s+abc123\s+cccccccccccc\s+loader$`, lines[1])

	code, out, errOut = runCLI(t, "runs", "--db", path, "--changes")
	require.Equal(t, 0, code, errOut)
	lines = strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2, out)
	assert.Regexp(t, `\sr2\s+orders-clean\s.*\sdef456\s.*\sjob_version$`, lines[1])

	_, out, _ = runCLI(t, "runs", "--db", path, "--changes", "--json")
	var cs []store.RunChange
	require.NoError(t, json.Unmarshal([]byte(out), &cs))
	require.Len(t, cs, 1)
	assert.Equal(t, "r1", cs[0].Previous.BatchID)
	assert.Equal(t, []string{"job_version"}, cs[0].Changed)

	_, out, _ = runCLI(t, "runs", "--db", path, "--changes", "--job", "nope")
	assert.Equal(t, "No run changed its job version or configuration.\n", out)
}
