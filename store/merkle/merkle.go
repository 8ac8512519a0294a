// Package merkle is the tamper-evident log under every audit stream: an
// RFC 6962 Merkle tree whose leaf i binds the stream, the sequence i+1, the
// kind of the entry and the hash of its stored content. It builds the tree
// incrementally (O(log n) per append, in memory only the right edge), emits
// the tiles (c2sp.org/tlog-tiles layout, height 8) a store keeps so that
// proofs never need the whole stream, and formats, signs and verifies
// checkpoints (c2sp.org/tlog-checkpoint signed notes). Hashing and proofs
// are those of golang.org/x/mod/sumdb/tlog. docs/integrity.md specifies every
// byte.
package merkle

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"

	"golang.org/x/mod/sumdb/tlog"
)

// TileHeight is the height of stored tiles: a full tile holds 256 hashes.
const TileHeight = 8

// Kind is what a leaf stands for.
type Kind string

const (
	// KindEvent: a stored audit event; its hash is event.hash, the SHA-256
	// of the canonical document.
	KindEvent Kind = "event"
	// KindDeadLetter: an event kept as a dead letter; its hash is the
	// SHA-256 of the stored document.
	KindDeadLetter Kind = "dead_letter"
	// KindGap: a sequence number that holds no event (see docs/storage.md:
	// a redelivery recognized only after numbering, or a write interrupted
	// by a crash); its hash is the SHA-256 of the gap's reason document.
	KindGap Kind = "gap"
)

// Valid reports whether k is one of the leaf kinds.
func (k Kind) Valid() bool { return k == KindEvent || k == KindDeadLetter || k == KindGap }

// LeafData is the exact byte string leaf (stream, sequence) is the record
// hash of: moving, renumbering or replacing an entry changes it.
//
//	batchaudit-leaf/v1\n<stream>\n<sequence>\n<kind>\n<hash>\n
func LeafData(stream string, sequence int64, kind Kind, hash string) []byte {
	return appendLeafData(make([]byte, 0, 32+len(stream)+len(kind)+len(hash)), stream, sequence, kind, hash)
}

func appendLeafData(b []byte, stream string, sequence int64, kind Kind, hash string) []byte {
	b = append(b, "batchaudit-leaf/v1\n"...)
	b = append(b, stream...)
	b = append(b, '\n')
	b = strconv.AppendInt(b, sequence, 10)
	b = append(b, '\n')
	b = append(b, kind...)
	b = append(b, '\n')
	b = append(b, hash...)
	return append(b, '\n')
}

// LeafHash is the RFC 6962 leaf hash SHA-256(0x00 || LeafData(...)),
// which tlog.RecordHash computes too, here without allocating: it is
// computed for every entry written and verified.
func LeafHash(stream string, sequence int64, kind Kind, hash string) tlog.Hash {
	var buf [192]byte
	return sha256.Sum256(appendLeafData(append(buf[:0], 0x00), stream, sequence, kind, hash))
}

// ErrInconsistent means two tree heads of one stream cannot both be true:
// the log was rewritten between them.
var ErrInconsistent = errors.New("merkle: the trees are not consistent (the log was rewritten)")

// CheckConsistency proves with r (which must hold the newer tree's hashes)
// that the tree old is a prefix of the tree cur.
func CheckConsistency(cur, old tlog.Tree, r tlog.HashReader) error {
	if old.N > cur.N {
		return fmt.Errorf("%w: size %d is smaller than the earlier size %d", ErrInconsistent, cur.N, old.N)
	}
	if old.N == 0 {
		return nil
	}
	proof, err := tlog.ProveTree(cur.N, old.N, r)
	if err != nil {
		return err
	}
	if err := tlog.CheckTree(proof, cur.N, cur.Hash, old.N, old.Hash); err != nil {
		return fmt.Errorf("%w: sizes %d and %d: %v", ErrInconsistent, old.N, cur.N, err)
	}
	return nil
}
