package canonical

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
)

// Project returns the fields of record selected for hashing: all fields when
// include is empty, otherwise only those named; fields named in exclude are
// always left out (e.g. updated_at, which changes on every load).
func Project(record map[string]any, include, exclude []string) map[string]any {
	if len(include) == 0 && len(exclude) == 0 {
		return record
	}
	out := make(map[string]any, len(record))
	if len(include) > 0 {
		for _, k := range include {
			if v, ok := record[k]; ok {
				out[k] = v
			}
		}
	} else {
		for k, v := range record {
			out[k] = v
		}
	}
	for _, k := range exclude {
		delete(out, k)
	}
	return out
}

// FieldHasher hashes single field values so that changed fields can be found
// later without keeping the values themselves. With a key it uses
// HMAC-SHA256, which keeps low-entropy values (a gender, a country) from being
// recovered by hashing every candidate.
type FieldHasher struct {
	key []byte
	buf []byte
	mac hash.Hash // reused across calls (Reset), so hashing a field does not allocate a new HMAC
}

// NewFieldHasher returns a hasher; key may be nil for plain SHA-256.
func NewFieldHasher(key []byte) *FieldHasher { return &FieldHasher{key: key} }

// Hash returns the hex digest of name and the canonical form of value. The
// field name is part of the input so equal values in different fields differ.
func (h *FieldHasher) Hash(name string, value any) (string, error) {
	sum, err := h.Sum(nil, name, value)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(sum), nil
}

// Sum appends the raw 32-byte digest that Hash returns in hex to dst. It is
// the allocation-free form for callers that store digests in binary.
func (h *FieldHasher) Sum(dst []byte, name string, value any) ([]byte, error) {
	var err error
	h.buf = h.buf[:0]
	if h.buf, err = appendString(h.buf, name); err != nil {
		return dst, err
	}
	h.buf = append(h.buf, ':')
	if h.buf, err = AppendJSON(h.buf, value); err != nil {
		return dst, err
	}
	if h.mac == nil {
		if h.key != nil {
			h.mac = hmac.New(sha256.New, h.key)
		} else {
			h.mac = sha256.New()
		}
	}
	h.mac.Reset()
	h.mac.Write(h.buf)
	return h.mac.Sum(dst), nil
}

// Pseudonym is the keyed pseudonym of a value, "hmac-sha256:<hex>" of
// HMAC-SHA256 over the value's canonical JSON under key: what the audit
// receiver's pseudonymize option and cdcprocessor's redact.hash store, and
// how reports find a data subject's records without the plaintext. A value
// that has no canonical form gets the pseudonym of the text "unhashable".
func Pseudonym(key []byte, v any) string {
	b, err := Marshal(v)
	if err != nil {
		b = []byte("unhashable")
	}
	m := hmac.New(sha256.New, key)
	m.Write(b)
	return pseudonymPrefix + hex.EncodeToString(m.Sum(nil))
}

const pseudonymPrefix = "hmac-sha256:"

// Pseudonymize returns the pseudonym of v, except that a value already in
// the form of a pseudonym is returned as it is (so pseudonymizing twice, in
// two tiers or in the receiver and cdcprocessor, gives one pseudonym) and
// nil stays nil (an absent value identifies nobody).
func Pseudonymize(key []byte, v any) any {
	switch t := v.(type) {
	case nil:
		return nil
	case string:
		if IsPseudonym(t) {
			return t
		}
	}
	return Pseudonym(key, v)
}

// IsPseudonym reports whether s has the form of a Pseudonym.
func IsPseudonym(s string) bool {
	if len(s) != len(pseudonymPrefix)+2*sha256.Size || s[:len(pseudonymPrefix)] != pseudonymPrefix {
		return false
	}
	for _, c := range []byte(s[len(pseudonymPrefix):]) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
