package sqlitestore

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/batchaudit/batchaudit/canonical"
	"github.com/batchaudit/batchaudit/signing"
	"github.com/batchaudit/batchaudit/store"
	"github.com/batchaudit/batchaudit/store/merkle"
	"github.com/batchaudit/batchaudit/store/storetest"
)

// BenchmarkProve builds the proof bundle of events of a stream whose tree
// has BATCHAUDIT_PROVE_LEAVES leaves (default 1M; the figure is
// 10M: BATCHAUDIT_PROVE_LEAVES=10000000, about 2 minutes to build). The
// tree's tiles are built directly (a builder over synthetic leaves); a few
// real events sit at random places of it, so a bundle is one real lookup,
// the kept checkpoint and O(log n) tile reads.
//
//	go test -run '^$' -bench Prove -benchtime 200x ./store/sqlitestore/
func BenchmarkProve(b *testing.B) {
	n := int64(1_000_000)
	if v := os.Getenv("BATCHAUDIT_PROVE_LEAVES"); v != "" {
		n, _ = strconv.ParseInt(v, 10, 64)
	}
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(b.TempDir(), "audit.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	// Real events at chosen sequences; synthetic leaves elsewhere.
	events := storetest.Stored(storetest.RunEvents("bench", storetest.T0)...)
	at := map[int64]*store.StoredEvent{}
	for i := range events {
		at[rand.Int64N(n)+1] = &events[i]
	}
	start := time.Now()
	var tree merkle.Builder
	tx, err := backend{s}.Begin(ctx, "main")
	if err != nil {
		b.Fatal(err)
	}
	var entries []*store.Entry
	for seq := int64(1); seq <= n; seq++ {
		if ev := at[seq]; ev != nil {
			doc, _ := ev.AppendCanonical(nil)
			h := canonical.HashBytes(doc)
			entries = append(entries, &store.Entry{Kind: merkle.KindEvent, Sequence: seq, Key: store.Key{ID: ev.ID},
				Event: ev, Hash: h, EventHash: h, Document: doc})
			tree.Append(merkle.LeafHash("main", seq, merkle.KindEvent, h))
		} else {
			tree.Append(merkle.LeafHash("main", seq, merkle.KindEvent, fmt.Sprintf("%064x", seq)))
		}
		if seq%1_000_000 == 0 || seq == n {
			if err := tx.PutTree(tree.Tree(), tree.Tiles()); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := tx.Append(entries); err != nil {
		b.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	key := filepath.Join(b.TempDir(), "key")
	sk, _, _ := signing.GenerateKey("bench")
	if err := signing.WriteSignerKey(key, sk); err != nil {
		b.Fatal(err)
	}
	signer, _ := signing.LoadSigner(key)
	cp := merkle.Checkpoint{Origin: "batchaudit/main", Size: n, Root: tree.Root()}
	msg, _ := cp.Sign(signer)
	root := tree.Root()
	if err := s.PutCheckpoint(ctx, store.StoredCheckpoint{Stream: "main", Size: n, Root: hex.EncodeToString(root[:]), Note: string(msg), Created: time.Now()}); err != nil {
		b.Fatal(err)
	}
	b.Logf("tree of %d leaves built and stored in %s", n, time.Since(start).Round(time.Second))
	ids := make([]string, 0, len(at))
	for _, ev := range at {
		ids = append(ids, ev.ID)
	}
	i := 0
	for b.Loop() {
		if _, err := store.Prove(ctx, s, ids[i%len(ids)], nil); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/proof")
}
