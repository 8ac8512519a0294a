package canonical

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// goldenFile holds SHA-256(JCS(v)) for each entry of testdata/vectors.json,
// one per line. The values were checked against an independent Python
// implementation; a change there means every stored record hash would change.
// The Python package, the Java and the Node examples test against the same
// file (see docs/conventions.md).
const goldenFile = "testdata/vectors.sha256"

func loadGolden(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(goldenFile)
	require.NoError(t, err)
	return strings.Fields(string(raw))
}

func loadVectors(t *testing.T) ([]any, []byte) {
	t.Helper()
	raw, err := os.ReadFile("testdata/vectors.json")
	require.NoError(t, err)
	var vectors []any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	require.NoError(t, dec.Decode(&vectors))
	return vectors, raw
}

func TestGoldenVectors(t *testing.T) {
	vectors, _ := loadVectors(t)
	golden := loadGolden(t)
	require.Len(t, golden, len(vectors))
	for i, v := range vectors {
		got, err := Hash(v)
		require.NoError(t, err)
		assert.Equal(t, golden[i], got, "vector %d", i)
	}
	// Key order does not matter.
	assert.Equal(t, golden[0], golden[1])
}

// TestPythonReferenceMatches runs the canonical module of the Python package
// (python/, standard library only) over the same vectors: jobs written in
// Python must produce the hashes the collector computes.
func TestPythonReferenceMatches(t *testing.T) {
	golden := loadGolden(t)
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 is required for the cross-language hash test (install python3)")
	}
	_, raw := loadVectors(t)
	cmd := exec.Command(py, "../python/src/batchaudit_jobaudit/canonical.py")
	cmd.Stdin = bytes.NewReader(raw)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, stderr.String())
	var got []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		got = append(got, sc.Text())
	}
	assert.Equal(t, golden, got)
}

// TestDocSnippetMatches runs the Python block shown in docs/conventions.md,
// so the documentation cannot drift from the implementation.
func TestDocSnippetMatches(t *testing.T) {
	golden := loadGolden(t)
	doc, err := os.ReadFile("../docs/conventions.md")
	require.NoError(t, err)
	var snippet string
	for _, block := range strings.Split(string(doc), "```python\n")[1:] {
		code, _, _ := strings.Cut(block, "```")
		if strings.Contains(code, "def record_hash") {
			snippet = code
			break
		}
	}
	require.NotEmpty(t, snippet, "docs/conventions.md lost its Python hashing snippet")
	py, err := exec.LookPath("python3")
	require.NoError(t, err, "python3 is required")
	script := snippet + "\nimport json, sys\nfor v in json.load(sys.stdin):\n    print(record_hash(v))\n"
	_, raw := loadVectors(t)
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = bytes.NewReader(raw)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, stderr.String())
	assert.Equal(t, strings.Join(golden, "\n")+"\n", string(out))
}
