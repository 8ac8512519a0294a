// Package signing holds batchaudit's Ed25519 keys and signatures. Keys and
// signed texts use the signed-note format of golang.org/x/mod/sumdb/note
// (c2sp.org/signed-note), so any note verifier can check them: reports sign
// a manifest with it, and Merkle checkpoints can use the same keys.
//
// A signer key is a secret: it lives in a file of mode 0600 and loading it
// refuses a file that others can read. A verifier key is public text
// ("<name>+<key id>+<base64 key>") to hand out.
package signing

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// GenerateKey returns a new Ed25519 signer key and its verifier key, both in
// note format, for the key name (e.g. "audit.example.com/reports").
func GenerateKey(name string) (signerKey, verifierKey string, err error) {
	if name == "" || strings.ContainsAny(name, "+ \t\n") {
		return "", "", fmt.Errorf("signing: key name %q must be non-empty without '+' or spaces", name)
	}
	return note.GenerateKey(rand.Reader, name)
}

// WriteSignerKey writes a signer key to a new file of mode 0600; it never
// overwrites an existing file (that would lose the old key).
func WriteSignerKey(path, signerKey string) error {
	if _, err := note.NewSigner(signerKey); err != nil {
		return fmt.Errorf("signing: not a signer key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("signing: write signer key: %w", err)
	}
	if _, err := f.WriteString(signerKey + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("signing: write signer key %s: %w", path, err)
	}
	return f.Close()
}

// LoadSigner reads a signer key file. A file that its group or others can
// read is refused: the key would not be secret.
func LoadSigner(path string) (note.Signer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("signing: signer key: %w", err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("signing: signer key %s has mode %04o: it must be readable by its owner only (chmod 600 %s)", path, perm, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing: signer key: %w", err)
	}
	s, err := note.NewSigner(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("signing: %s is not a signer key: %w", path, err)
	}
	return s, nil
}

// LoadVerifier accepts a verifier key as text, or the path of a file that
// holds one.
func LoadVerifier(keyOrPath string) (note.Verifier, error) {
	text := strings.TrimSpace(keyOrPath)
	if b, err := os.ReadFile(keyOrPath); err == nil {
		text = strings.TrimSpace(string(b))
	} else if !errors.Is(err, fs.ErrNotExist) && !strings.Contains(keyOrPath, "+") {
		return nil, fmt.Errorf("signing: verifier key: %w", err)
	}
	v, err := note.NewVerifier(text)
	if err != nil {
		return nil, fmt.Errorf("signing: not a verifier key (want name+id+key, as keygen prints): %w", err)
	}
	return v, nil
}

// LoadVerifiers loads every key of LoadVerifier's forms, in order.
func LoadVerifiers(keysOrPaths []string) ([]note.Verifier, error) {
	out := make([]note.Verifier, 0, len(keysOrPaths))
	for _, k := range keysOrPaths {
		v, err := LoadVerifier(k)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Sign returns text as a signed note. Text must end with a newline.
func Sign(text string, signer note.Signer) ([]byte, error) {
	b, err := note.Sign(&note.Note{Text: text}, signer)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	return b, nil
}

// Open verifies a signed note with the given verifier keys and returns its
// text. It fails unless one of them signed it and every known signature is
// valid.
func Open(msg []byte, verifiers ...note.Verifier) (string, error) {
	n, err := note.Open(msg, note.VerifierList(verifiers...))
	if err != nil {
		return "", fmt.Errorf("signing: %w", err)
	}
	return n.Text, nil
}

// VerifierOf derives the verifier of the signer key in the file at path
// (the public half of an Ed25519 key), so a signer can check what it
// signed before.
func VerifierOf(path string) (note.Verifier, error) {
	if _, err := LoadSigner(path); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	parts := strings.SplitN(strings.TrimSpace(string(b)), "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return nil, errors.New("signing: not a signer key")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return nil, errors.New("signing: not an Ed25519 signer key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(parts[2], pub)
	if err != nil {
		return nil, err
	}
	return note.NewVerifier(vkey)
}
