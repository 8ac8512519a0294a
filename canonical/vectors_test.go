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

// golden holds SHA-256(JCS(v)) for each entry of testdata/vectors.json. The
// values were checked against the Python reference below; a change here means
// every stored record hash would change.
var golden = []string{
	"ec4f3090ddca38d98c1ed38d9bf37b2a9a9376bda32cf753aa60783854f80bbb",
	"ec4f3090ddca38d98c1ed38d9bf37b2a9a9376bda32cf753aa60783854f80bbb",
	"4bc719b9d86efec4c3c8a9ec2f8c6e90068965f0fbc5ead5ad9830d145b93f70",
	"3b2dca2dc2a80252fa9afd00022bbb413cdd223f2f3fe14e7ef25a006cb1e334",
	"9ed5a540dcccd887d3a73095aa50a490a0ece3db43dba11f37cd62f70e89a2b3",
	"44e404d0c3ad59500783992aa7ae5369be6969f0f6e9a3156e40fcb8ac3a6c8f",
	"6d44a7b4fc5518ca8cd06a17fe22fb3e53275a68d45f140a0203276b2dc9a160",
	"4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
	"3fe01def54b1c6cd795b2ebfcbab64150f6a507bce043040c662c682eebfed1e",
	"c17c025fb9ed44eae8a9d5c9df0312af5c6161bd79bd669692364fc5ecaf108a",
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
	require.Len(t, golden, len(vectors))
	for i, v := range vectors {
		got, err := Hash(v)
		require.NoError(t, err)
		assert.Equal(t, golden[i], got, "vector %d", i)
	}
	// Key order does not matter.
	assert.Equal(t, golden[0], golden[1])
}

// TestPythonReferenceMatches runs the standard-library Python snippet from
// docs/conventions.md over the same vectors: jobs written in Python must
// produce the hashes the collector computes.
func TestPythonReferenceMatches(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 is required for the cross-language hash test (install python3)")
	}
	_, raw := loadVectors(t)
	cmd := exec.Command(py, "testdata/jcs_hash.py")
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
