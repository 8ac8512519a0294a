package merkle

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is a signed tree head in the c2sp.org/tlog-checkpoint format:
//
//	<origin>\n<size>\n<base64 root>\n
//
// followed, as a signed note, by a blank line and one signature line per key.
type Checkpoint struct {
	// Origin names the log: one per stream (e.g. "batchaudit/orders").
	Origin string
	Size   int64
	Root   tlog.Hash
}

// Tree returns the checkpoint's tree head.
func (c Checkpoint) Tree() tlog.Tree { return tlog.Tree{N: c.Size, Hash: c.Root} }

// Body is the text a checkpoint's signatures cover.
func (c Checkpoint) Body() string {
	return c.Origin + "\n" + strconv.FormatInt(c.Size, 10) + "\n" + base64.StdEncoding.EncodeToString(c.Root[:]) + "\n"
}

// Sign returns the checkpoint as a signed note, signed by every signer
// (more than one while a key is being rotated).
func (c Checkpoint) Sign(signers ...note.Signer) ([]byte, error) {
	if err := validOrigin(c.Origin); err != nil {
		return nil, err
	}
	return note.Sign(&note.Note{Text: c.Body()}, signers...)
}

// Open verifies a signed checkpoint with the known verifiers and parses it.
// At least one signature must verify; signatures by unknown keys are
// ignored (they may belong to witnesses).
func Open(msg []byte, verifiers note.Verifiers) (Checkpoint, *note.Note, error) {
	n, err := note.Open(msg, verifiers)
	if err != nil {
		return Checkpoint{}, nil, fmt.Errorf("merkle: checkpoint signature: %w", err)
	}
	c, err := ParseBody(n.Text)
	if err != nil {
		return Checkpoint{}, nil, err
	}
	return c, n, nil
}

// ParseBody parses the text of a checkpoint (without checking signatures).
// Extension lines after the root are allowed and ignored.
func ParseBody(text string) (Checkpoint, error) {
	lines := strings.SplitAfter(text, "\n")
	if len(lines) < 3 || !strings.HasSuffix(text, "\n") {
		return Checkpoint{}, errors.New("merkle: checkpoint: want origin, size and root lines")
	}
	origin := strings.TrimSuffix(lines[0], "\n")
	if err := validOrigin(origin); err != nil {
		return Checkpoint{}, err
	}
	sizeText := strings.TrimSuffix(lines[1], "\n")
	size, err := strconv.ParseInt(sizeText, 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != sizeText {
		return Checkpoint{}, fmt.Errorf("merkle: checkpoint: bad tree size %q", sizeText)
	}
	root, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(lines[2], "\n"))
	if err != nil || len(root) != tlog.HashSize {
		return Checkpoint{}, fmt.Errorf("merkle: checkpoint: bad root hash %q", strings.TrimSuffix(lines[2], "\n"))
	}
	c := Checkpoint{Origin: origin, Size: size}
	copy(c.Root[:], root)
	return c, nil
}

func validOrigin(o string) error {
	if o == "" || strings.ContainsAny(o, "\n") || strings.TrimSpace(o) != o {
		return fmt.Errorf("merkle: checkpoint origin %q must be one non-empty line", o)
	}
	return nil
}

// EmptyRoot is the RFC 6962 hash of the empty tree.
func EmptyRoot() tlog.Hash { return emptyRoot }

// Text returns the text of a signed note: what comes before the blank line
// and the signature lines.
func Text(signed string) string {
	if i := strings.Index(signed, "\n\n"); i >= 0 {
		return signed[:i+1]
	}
	return signed
}

// Published is one line of a checkpoint file (JSON lines): every checkpoint
// the collector or retention signs is appended to it, to be kept where the
// store's administrators cannot rewrite it. Final marks the checkpoint of a
// clean stop: nothing may follow it until a collector writes again.
type Published struct {
	Stream string `json:"stream"`
	Size   int64  `json:"size"`
	Note   string `json:"note"`
	Final  bool   `json:"final,omitempty"`
}

// AppendPublished appends p to the checkpoint file at path (creating it and
// its directory if needed) and syncs it.
func AppendPublished(path string, p Published) error {
	line, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return err
	}
	_, err = f.Write(append(line, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("append to %s: %w", path, err)
	}
	return nil
}
