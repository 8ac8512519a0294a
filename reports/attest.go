package reports

import (
	"context"
	"time"
)

// Attestation is the integrity section of a report: the signed Merkle
// checkpoint that covers the period's end and the consistency proof from
// the previous report's checkpoint. batchaudit has no Merkle log yet, so
// without an Attestor the section says it is absent; it is never faked.
type Attestation struct {
	// Status is "absent" (no Merkle log), "verified" or "failed".
	Status    string `json:"status"`
	Statement string `json:"statement"`
	// Checkpoint is the signed checkpoint covering the period's end, and
	// Previous the one the previous report of the series used.
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`
	Previous   *Checkpoint `json:"previous_checkpoint,omitempty"`
	// ConsistencyProof holds the proof hashes (base64) from Previous to
	// Checkpoint.
	ConsistencyProof []string `json:"consistency_proof,omitempty"`
}

// Checkpoint is a signed tree head of the audit log (c2sp.org/tlog-checkpoint).
type Checkpoint struct {
	Origin   string `json:"origin"`
	TreeSize int64  `json:"tree_size"`
	RootHash string `json:"root_hash"`
	// Note is the whole signed note, verifiable on its own.
	Note string `json:"note"`
}

// Attestor provides the attestation of a period. The Merkle log plugs in
// here; reports without one carry AbsentAttestation.
type Attestor interface {
	Attest(ctx context.Context, from, to time.Time) (Attestation, error)
}

// AttestationAbsent is the status of a report without a Merkle log.
const AttestationAbsent = "absent"

// AbsentAttestation says plainly what the report does not have.
func AbsentAttestation() Attestation {
	return Attestation{Status: AttestationAbsent,
		Statement: "Absent: this trail has no Merkle log yet, so no signed checkpoint covers this period and no " +
			"consistency proof links it to the previous report. The report rests on the store's per-event " +
			"SHA-256 hashes and gapless per-stream sequence numbers (check them with `batchaudit verify`); " +
			"its own integrity is protected by the signed manifest."}
}
