package signing

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"
)

func TestKeysSignOpen(t *testing.T) {
	dir := t.TempDir()
	skey, vkey, err := GenerateKey("audit.example/reports")
	require.NoError(t, err)
	path := filepath.Join(dir, "report.key")
	require.NoError(t, WriteSignerKey(path, skey))
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	require.ErrorContains(t, WriteSignerKey(path, skey), "exists", "never overwrites a key")

	signer, err := LoadSigner(path)
	require.NoError(t, err)
	assert.Equal(t, "audit.example/reports", signer.Name())
	msg, err := Sign("hello\n", signer)
	require.NoError(t, err)
	assert.Contains(t, string(msg), "\n— audit.example/reports ")

	v, err := LoadVerifier(vkey)
	require.NoError(t, err)
	text, err := Open(msg, v)
	require.NoError(t, err)
	assert.Equal(t, "hello\n", text)
	vfile := filepath.Join(dir, "report.pub")
	require.NoError(t, os.WriteFile(vfile, []byte(vkey+"\n"), 0o644))
	v2, err := LoadVerifier(vfile)
	require.NoError(t, err)
	assert.Equal(t, v.KeyHash(), v2.KeyHash())

	// Altered text or signature, or another key: refused.
	_, err = Open([]byte(strings.Replace(string(msg), "hello", "hellO", 1)), v)
	require.Error(t, err)
	sig := []byte(string(msg))
	sig[len(sig)-5] ^= 1
	_, err = Open(sig, v)
	require.Error(t, err)
	_, other, err := GenerateKey("audit.example/reports")
	require.NoError(t, err)
	ov, err := LoadVerifier(other)
	require.NoError(t, err)
	_, err = Open(msg, ov)
	var unknown *note.UnverifiedNoteError
	require.ErrorAs(t, err, &unknown)
}

func TestKeyFileChecks(t *testing.T) {
	dir := t.TempDir()
	skey, vkey, err := GenerateKey("k")
	require.NoError(t, err)
	path := filepath.Join(dir, "k.key")
	require.NoError(t, WriteSignerKey(path, skey))
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644} {
		require.NoError(t, os.Chmod(path, mode))
		_, err := LoadSigner(path)
		require.ErrorContains(t, err, "readable by its owner only", "mode %04o", mode)
	}
	require.NoError(t, os.Chmod(path, 0o400))
	_, err = LoadSigner(path)
	require.NoError(t, err)
	_, err = LoadSigner(filepath.Join(dir, "missing"))
	require.Error(t, err)
	bad := filepath.Join(dir, "bad.key")
	require.NoError(t, os.WriteFile(bad, []byte(vkey), 0o600))
	_, err = LoadSigner(bad)
	require.ErrorContains(t, err, "not a signer key")
	require.ErrorContains(t, WriteSignerKey(filepath.Join(dir, "x"), vkey), "not a signer key")
	_, err = LoadVerifier("nonsense")
	require.ErrorContains(t, err, "not a verifier key")
	_, _, err = GenerateKey("has space")
	require.Error(t, err)
}

func TestVerifierOfSignerKey(t *testing.T) {
	sk, vk, err := GenerateKey("audit.example/cp")
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "key")
	require.NoError(t, WriteSignerKey(path, sk))
	v, err := VerifierOf(path)
	require.NoError(t, err)
	want, err := LoadVerifier(vk)
	require.NoError(t, err)
	assert.Equal(t, want.Name(), v.Name())
	assert.Equal(t, want.KeyHash(), v.KeyHash())
	s, err := LoadSigner(path)
	require.NoError(t, err)
	msg, err := Sign("hello\n", s)
	require.NoError(t, err)
	_, err = Open(msg, v)
	assert.NoError(t, err, "the derived verifier checks what the key signs")
}
