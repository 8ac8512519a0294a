package esstore

import (
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/config/configopaque"
	"golang.org/x/mod/sumdb/note"

	"github.com/batchaudit/batchaudit/auditevent"
	"github.com/batchaudit/batchaudit/signing"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/merkle"
	"github.com/batchaudit/batchaudit/store/retention"
	"github.com/batchaudit/batchaudit/store/storetest"
	"github.com/batchaudit/batchaudit/store/verify"
)

// TestSecureRetentionNeedsTheAdminRole, on the secured node: the collector's
// writer key can neither prune nor get a retention event written (refused
// before anything is stored; its own deletes answer 403 per item); a user
// with the batchaudit_admin role prunes, and the reader's key then verifies
// the trail with the pruned range reported.
func TestSecureRetentionNeedsTheAdminRole(t *testing.T) {
	n, admin, keys := secureDeployment(t)
	prefix := admin.IndexPrefix
	user, password := prefix+"-admin", "pw-"+prefix
	code, _ := status(t, n.Admin, esapi.SecurityPutUserRequest{Username: user,
		Body: strings.NewReader(`{"password":"` + password + `","roles":["` + prefix + `_admin"]}`)})
	require.Equal(t, http.StatusOK, code)
	t.Cleanup(func() { _, _ = status(t, n.Admin, esapi.SecurityDeleteUserRequest{Username: user}) })
	asAdmin := withKey(admin, "")
	asAdmin.APIKey, asAdmin.Username, asAdmin.Password = "", user, configopaque.String(password)

	// The collector's trail: a run stored 800 days ago, one of yesterday.
	w := openWith(t, withKey(admin, keys.WriterAPIKey))
	old := time.Now().UTC().Add(-800 * 24 * time.Hour)
	w.now = func() time.Time { return old }
	_, err := w.Write(ctx(t), "sec", storetest.Stored(storetest.RunEvents("sec-old", old)...))
	require.NoError(t, err)
	w.now = time.Now
	_, err = w.Write(ctx(t), "sec", storetest.Stored(storetest.RunEvents("sec-young", time.Now().UTC().Add(-24*time.Hour))...))
	require.NoError(t, err)
	skey, vkey, err := signing.GenerateKey("checkpoints.test")
	require.NoError(t, err)
	signer, err := note.NewSigner(skey)
	require.NoError(t, err)
	verifier, err := note.NewVerifier(vkey)
	require.NoError(t, err)
	tree, err := w.Tree(ctx(t), "sec")
	require.NoError(t, err)
	msg, err := merkle.Checkpoint{Origin: "batchaudit/sec", Size: tree.N, Root: tree.Hash}.Sign(signer)
	require.NoError(t, err)
	require.NoError(t, w.PutCheckpoint(ctx(t), store.StoredCheckpoint{Stream: "sec", Size: tree.N, Root: hex.EncodeToString(tree.Hash[:]),
		Note: string(msg), Created: time.Now()}))
	published := []verify.External{{Stream: "sec", Note: string(msg), Final: true}} // the collector stopped cleanly
	opts := retention.Options{OlderThan: 400 * 24 * time.Hour, Signers: []note.Signer{signer}, Verifiers: []note.Verifier{verifier},
		External: published, Actor: "alice",
		Publish: func(stream string, _ int64, signed []byte, final bool) error {
			published = append(published, verify.External{Stream: stream, Note: string(signed), Final: final})
			return nil
		}}

	_, err = retention.Prune(ctx(t), w, "sec", opts)
	require.ErrorIs(t, err, retention.ErrRefused)
	assert.Contains(t, err.Error(), "these credentials may not prune: they lack delete on "+WriteAlias(DeadLettersIndex(prefix))+", delete on "+
		WriteAlias(EventsIndex(prefix))+", delete on "+WriteAlias(RunsIndex(prefix)))
	last, err := w.LastSequence(ctx(t), "sec")
	require.NoError(t, err)
	assert.Equal(t, int64(34), last, "nothing was written")
	_, err = w.Prune(ctx(t), "sec", 5, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "HTTP 403: security_exception", "the role itself refuses the writer's deletes")

	a := openWith(t, asAdmin)
	opts.External, opts.Principal = published, user
	res, err := retention.Prune(ctx(t), a, "sec", opts)
	require.NoError(t, err)
	assert.Equal(t, int64(17), res.Removed)
	assert.Equal(t, int64(35), res.EventSequence)

	r := openWith(t, withKey(admin, keys.ReaderAPIKey))
	rep, err := verify.Verify(ctx(t), r, verify.Options{Verifiers: note.VerifierList(verifier), External: published})
	require.NoError(t, err)
	assert.True(t, rep.OK(), "%+v", rep.Problems)
	require.NotNil(t, rep.Streams[0].Pruned)
	assert.Equal(t, int64(17), rep.Streams[0].Pruned.Through)
	evs, err := r.Events(ctx(t), store.EventQuery{Names: []string{auditevent.RetentionPrune}})
	require.NoError(t, err)
	require.Len(t, evs, 1)
	assert.Equal(t, user, evs[0].AuthPrincipal)
	assert.Equal(t, "alice", evs[0].Actor.ID)
}
