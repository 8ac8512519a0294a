package storetest

import (
	"bytes"
	"context"
	"encoding/hex"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/mod/sumdb/note"

	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/merkle"
)

// CheckpointKey returns a fixed Ed25519 key pair (name "storetest.checkpoints")
// and the verifier key's text: Ed25519 signatures are deterministic, so
// checkpoints signed with it are the same bytes on every run and every
// backend, and golden files can hold them.
func CheckpointKey() (note.Signer, note.Verifier, string) {
	skey, vkey, err := note.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{7}, 32)), "storetest.checkpoints")
	if err != nil {
		panic(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		panic(err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		panic(err)
	}
	return signer, verifier, vkey
}

// SignCheckpoint signs the stream's current tree as the audit exporter does
// (origin "batchaudit/<stream>"), keeps it in the store with the given
// creation time, and returns it.
func SignCheckpoint(t testing.TB, s store.Store, stream string, signer note.Signer, created time.Time) store.StoredCheckpoint {
	t.Helper()
	ctx := context.Background()
	tree, err := s.Tree(ctx, stream)
	require.NoError(t, err)
	msg, err := merkle.Checkpoint{Origin: "batchaudit/" + stream, Size: tree.N, Root: tree.Hash}.Sign(signer)
	require.NoError(t, err)
	c := store.StoredCheckpoint{Stream: stream, Size: tree.N, Root: hex.EncodeToString(tree.Hash[:]), Note: string(msg), Created: created.UTC()}
	require.NoError(t, s.PutCheckpoint(ctx, c))
	return c
}
