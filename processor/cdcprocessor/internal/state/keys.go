package state

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"
)

// Storage keys. The storage client belongs to this processor alone (the
// extension scopes clients by component id), so short prefixes suffice:
//
//	r:<dataset>:<key>   record state (Record)
//	x:<dataset>:<n>     key index chunk n: ChunkSize key hashes of 16 bytes
//	m:<dataset>         dataset meta (Meta)
//	u:<run>             run state (Run)
//	ds                  registry of datasets (Registry)
//	runs                registry of runs with their last update (for TTL)
const (
	// ChunkSize is the number of key hashes per index chunk (8 KiB chunks).
	ChunkSize  = 512
	keyHashLen = 16
)

// DatasetID names a dataset in state keys: the truncated SHA-256 of its
// role, namespace and name.
func DatasetID(role, namespace, name string) string {
	h := sha256.New()
	for _, p := range []string{role, namespace, name} {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// KeyHash is the truncated SHA-256 of a record key; state keys and the index
// hold it instead of the key.
type KeyHash [keyHashLen]byte

// HashKey returns the KeyHash of a record key.
func HashKey(key string) KeyHash {
	s := sha256.Sum256([]byte(key))
	var k KeyHash
	copy(k[:], s[:keyHashLen])
	return k
}

// RunID is the 64-bit id of a batch run (truncated SHA-256 of its batch id).
func RunID(batchID string) uint64 {
	s := sha256.Sum256([]byte(batchID))
	return binary.LittleEndian.Uint64(s[:8])
}

// EventHash is the memo key of an event id.
func EventHash(eventID string) [16]byte {
	s := sha256.Sum256([]byte(eventID))
	var e [16]byte
	copy(e[:], s[:16])
	return e
}

// RecordKeyLen is the length of every record state key.
const RecordKeyLen = 2 + 16 + 1 + 2*keyHashLen

// RecordKey is the storage key of one record's state.
func RecordKey(ds string, k KeyHash) string {
	var b [RecordKeyLen]byte
	return string(AppendRecordKey(b[:0], ds, k))
}

// AppendRecordKey appends RecordKey(ds, k) to dst (RecordKeyLen bytes for
// the 16-hex-digit dataset ids DatasetID gives).
func AppendRecordKey(dst []byte, ds string, k KeyHash) []byte {
	dst = append(dst, "r:"...)
	dst = append(dst, ds...)
	dst = append(dst, ':')
	return hex.AppendEncode(dst, k[:])
}

func chunkKey(ds string, n uint64) string { return "x:" + ds + ":" + strconv.FormatUint(n, 10) }
func metaKey(ds string) string            { return "m:" + ds }
func runKey(id uint64) string             { return "u:" + strconv.FormatUint(id, 16) }

const (
	registryKey = "ds"
	runsKey     = "runs"
)
