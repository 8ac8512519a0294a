package merkle

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// BundleFormat names the proof bundle layout (docs/integrity.md).
const BundleFormat = "batchaudit-proof/v1"

// Bundle proves, to anyone holding the verifier key and nothing else, that
// a document is entry Sequence of a stream's signed log.
type Bundle struct {
	Format   string `json:"format"`
	Stream   string `json:"stream"`
	Sequence int64  `json:"sequence"`
	Kind     Kind   `json:"kind"`
	// Document is the stored document, verbatim; Hash its SHA-256 (hex).
	Document string `json:"document"`
	Hash     string `json:"hash"`
	// Checkpoint is the signed checkpoint the inclusion proof leads to.
	Checkpoint string `json:"checkpoint"`
	// Inclusion is the RFC 6962 audit path of leaf Sequence-1.
	Inclusion [][]byte `json:"inclusion"`
	// Consistency, when present, proves Checkpoint extends an older one.
	Consistency *ConsistencyProof `json:"consistency,omitempty"`
}

// ConsistencyProof proves that the tree of From is a prefix of the tree of
// the bundle's checkpoint.
type ConsistencyProof struct {
	From  string   `json:"from"`
	Proof [][]byte `json:"proof"`
}

// Verified is what a bundle proved.
type Verified struct {
	Checkpoint Checkpoint
	// From is the older checkpoint, when the bundle has a consistency proof.
	From *Checkpoint
}

// VerifyBundle checks a bundle offline: the document's hash, the leaf, the
// checkpoint's signature and origin, the inclusion proof, and the
// consistency proof if any.
func VerifyBundle(b *Bundle, verifiers note.Verifiers, originPrefix string) (*Verified, error) {
	if b.Format != BundleFormat {
		return nil, fmt.Errorf("merkle: bundle format %q, want %q", b.Format, BundleFormat)
	}
	if !b.Kind.Valid() || b.Sequence < 1 {
		return nil, fmt.Errorf("merkle: bundle names kind %q at sequence %d", b.Kind, b.Sequence)
	}
	sum := sha256.Sum256([]byte(b.Document))
	if hex.EncodeToString(sum[:]) != b.Hash {
		return nil, errors.New("merkle: the document does not hash to the bundle's hash")
	}
	cp, _, err := Open([]byte(b.Checkpoint), verifiers)
	if err != nil {
		return nil, err
	}
	if want := originPrefix + b.Stream; cp.Origin != want {
		return nil, fmt.Errorf("merkle: the checkpoint's origin is %q, want %q", cp.Origin, want)
	}
	if b.Sequence > cp.Size {
		return nil, fmt.Errorf("merkle: sequence %d is beyond the checkpoint's size %d", b.Sequence, cp.Size)
	}
	proof, err := hashes(b.Inclusion)
	if err != nil {
		return nil, err
	}
	leaf := LeafHash(b.Stream, b.Sequence, b.Kind, b.Hash)
	if err := tlog.CheckRecord(proof, cp.Size, cp.Root, b.Sequence-1, leaf); err != nil {
		return nil, fmt.Errorf("merkle: inclusion proof: %w", err)
	}
	v := &Verified{Checkpoint: cp}
	if c := b.Consistency; c != nil {
		old, _, err := Open([]byte(c.From), verifiers)
		if err != nil {
			return nil, fmt.Errorf("merkle: older checkpoint: %w", err)
		}
		if old.Origin != cp.Origin {
			return nil, fmt.Errorf("merkle: the older checkpoint's origin is %q, want %q", old.Origin, cp.Origin)
		}
		p, err := hashes(c.Proof)
		if err != nil {
			return nil, err
		}
		if old.Size > cp.Size {
			return nil, fmt.Errorf("merkle: the older checkpoint (size %d) is larger than the newer (%d)", old.Size, cp.Size)
		}
		if old.Size > 0 {
			if err := tlog.CheckTree(p, cp.Size, cp.Root, old.Size, old.Root); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrInconsistent, err)
			}
		}
		v.From = &old
	}
	return v, nil
}

func hashes(in [][]byte) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(in))
	for i, b := range in {
		if len(b) != tlog.HashSize {
			return nil, fmt.Errorf("merkle: proof hash %d has %d bytes", i, len(b))
		}
		copy(out[i][:], b)
	}
	return out, nil
}

// Hashes converts proof hashes for a bundle.
func Hashes[P ~[]tlog.Hash](p P) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = append([]byte(nil), p[i][:]...)
	}
	return out
}
