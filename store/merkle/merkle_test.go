package merkle

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	mrand "math/rand"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	tdlog "github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// RFC 6962 test data (as published with the Certificate Transparency and
// transparency-dev reference implementations): the leaf inputs and the
// tree hash for each size 1..8.
var (
	rfcLeaves = []string{"", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"}
	rfcRoots  = []string{
		"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
		"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
		"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
		"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
		"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
		"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
		"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
		"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
	}
)

func TestRFC6962Vectors(t *testing.T) {
	var b Builder
	empty := b.Root()
	assert.Equal(t, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", hex.EncodeToString(empty[:]))
	for i, in := range rfcLeaves {
		data, err := hex.DecodeString(in)
		require.NoError(t, err)
		b.Append(tlog.RecordHash(data))
		root := b.Root()
		assert.Equal(t, rfcRoots[i], hex.EncodeToString(root[:]), "size %d", i+1)
	}
}

// memStore keeps stored hashes the tlog way: the reference the builder is
// compared with, and a tile store.
type memStore struct {
	hashes []tlog.Hash
	n      int64
}

func (m *memStore) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		if x >= int64(len(m.hashes)) {
			return nil, fmt.Errorf("no hash %d", x)
		}
		out[i] = m.hashes[x]
	}
	return out, nil
}

func (m *memStore) add(data []byte) tlog.Hash {
	hs, err := tlog.StoredHashes(m.n, data, m)
	if err != nil {
		panic(err)
	}
	m.hashes = append(m.hashes, hs...)
	m.n++
	return hs[0]
}

// tileStore is a TileReader over saved tiles, serving a narrower tile from
// a wider saved one, as the stores do.
type tileStore map[[2]int64][]byte // (level, index) -> data of the widest tile

func (s tileStore) save(ts []Tile) {
	for _, t := range ts {
		k := [2]int64{int64(t.L), t.N}
		if len(t.Data) > len(s[k]) {
			s[k] = t.Data
		}
	}
}
func (s tileStore) Height() int { return TileHeight }
func (s tileStore) ReadTiles(ts []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(ts))
	for i, t := range ts {
		d := s[[2]int64{int64(t.L), t.N}]
		if len(d) < t.W*tlog.HashSize {
			return nil, fmt.Errorf("tile %v not stored (have %d bytes)", t, len(d))
		}
		out[i] = d[:t.W*tlog.HashSize]
	}
	return out, nil
}
func (s tileStore) SaveTiles([]tlog.Tile, [][]byte) {}

func leafData(i int) []byte { return LeafData("s", int64(i+1), KindEvent, fmt.Sprintf("%064x", i)) }

func TestBuilderAgreesWithTlogAndTiles(t *testing.T) {
	rnd := mrand.New(mrand.NewSource(1))
	ref := &memStore{}
	var b Builder
	tiles := tileStore{}
	for batch := 0; batch < 60; batch++ {
		old := b.Size()
		n := 1 + rnd.Intn(700)
		if batch%10 == 0 {
			n = 1
		}
		for range n {
			h := ref.add(leafData(int(b.Size())))
			b.Append(h)
		}
		got := b.Tiles()
		// The tiles to store are the ones tlog says changed, with the same data.
		want := tlog.NewTiles(TileHeight, old, b.Size())
		require.Len(t, got, len(want), "size %d -> %d", old, b.Size())
		gotSet := map[tlog.Tile][]byte{}
		for _, g := range got {
			gotSet[g.Tile] = g.Data
		}
		for _, w := range want {
			data, err := tlog.ReadTileData(w, ref)
			require.NoError(t, err)
			assert.Equal(t, data, gotSet[w], "tile %+v", w)
		}
		tiles.save(got)
		refRoot, err := tlog.TreeHash(b.Size(), ref)
		require.NoError(t, err)
		require.Equal(t, refRoot, b.Root(), "size %d", b.Size())

		// The stored tiles serve every hash of the tree, checked against the root.
		r := tlog.TileHashReader(b.Tree(), tiles)
		_, err = tlog.TreeHash(b.Size(), r)
		require.NoError(t, err)
	}
}

func TestLoadContinuesTheTree(t *testing.T) {
	for _, n := range []int{1, 2, 255, 256, 257, 511, 512, 65535, 65536, 65537, 70001} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			var full, part Builder
			tiles := tileStore{}
			for i := range n {
				h := LeafHash("s", int64(i+1), KindEvent, fmt.Sprintf("%064x", i))
				full.Append(h)
				part.Append(h)
				if i%1000 == 999 {
					tiles.save(part.Tiles())
				}
			}
			tiles.save(part.Tiles())
			loaded, err := Load(int64(n), tlog.TileHashReader(part.Tree(), tiles))
			require.NoError(t, err)
			require.Equal(t, part.Root(), loaded.Root())
			for i := n; i < n+300; i++ {
				h := LeafHash("s", int64(i+1), KindEvent, fmt.Sprintf("%064x", i))
				full.Append(h)
				loaded.Append(h)
			}
			assert.Equal(t, full.Root(), loaded.Root(), "a loaded builder continues exactly")
			tiles.save(loaded.Tiles())
			_, err = tlog.TreeHash(loaded.Size(), tlog.TileHashReader(loaded.Tree(), tiles))
			assert.NoError(t, err, "its tiles continue the stored ones")
		})
	}
}

// Every proof built from stored tiles is accepted by an independent
// verifier (transparency-dev/merkle), and consistency holds between every
// pair of tree heads published along the way.
func TestProofsCheckedIndependentlyAndHeadsConsistent(t *testing.T) {
	rnd := mrand.New(mrand.NewSource(7))
	var b Builder
	tiles := tileStore{}
	var heads []tlog.Tree
	var leafHashes []tlog.Hash
	for range 25 {
		for range 1 + rnd.Intn(400) {
			h := LeafHash("orders", b.Size()+1, KindEvent, fmt.Sprintf("%064x", rnd.Int63()))
			leafHashes = append(leafHashes, h)
			b.Append(h)
		}
		tiles.save(b.Tiles())
		heads = append(heads, b.Tree())
	}
	hasher := rfc6962.DefaultHasher
	for i, head := range heads {
		r := tlog.TileHashReader(head, tiles)
		for k := 0; k < 20; k++ {
			idx := rnd.Int63n(head.N)
			p, err := tlog.ProveRecord(head.N, idx, r)
			require.NoError(t, err)
			require.NoError(t, tlog.CheckRecord(p, head.N, head.Hash, idx, leafHashes[idx]))
			require.NoError(t, proof.VerifyInclusion(hasher, uint64(idx), uint64(head.N), leafHashes[idx][:], proofBytes(p), head.Hash[:]))
			// A wrong leaf fails both.
			bad := leafHashes[(idx+1)%head.N]
			if bad != leafHashes[idx] {
				assert.Error(t, proof.VerifyInclusion(hasher, uint64(idx), uint64(head.N), bad[:], proofBytes(p), head.Hash[:]))
			}
		}
		for _, old := range heads[:i] {
			require.NoError(t, CheckConsistency(head, old, r))
			p, err := tlog.ProveTree(head.N, old.N, r)
			require.NoError(t, err)
			require.NoError(t, proof.VerifyConsistency(hasher, uint64(old.N), uint64(head.N), proofBytes(p), old.Hash[:], head.Hash[:]))
		}
	}
	// A rewritten history is inconsistent with what was published.
	forged := heads[3]
	forged.Hash[0] ^= 1
	assert.ErrorIs(t, CheckConsistency(heads[len(heads)-1], forged, tlog.TileHashReader(heads[len(heads)-1], tiles)), ErrInconsistent)
}

func proofBytes[P ~[]tlog.Hash](p P) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = append([]byte(nil), p[i][:]...)
	}
	return out
}

func TestCheckpointSignParseAndRotate(t *testing.T) {
	oldSK, oldVK, err := note.GenerateKey(rand.Reader, "audit.example/old")
	require.NoError(t, err)
	newSK, newVK, err := note.GenerateKey(rand.Reader, "audit.example/new")
	require.NoError(t, err)
	signer := func(k string) note.Signer {
		s, err := note.NewSigner(k)
		require.NoError(t, err)
		return s
	}
	verifier := func(k string) note.Verifier {
		v, err := note.NewVerifier(k)
		require.NoError(t, err)
		return v
	}
	var b Builder
	for i := range 10 {
		b.Append(LeafHash("orders", int64(i+1), KindEvent, fmt.Sprintf("%x", sha256.Sum256([]byte{byte(i)}))))
	}
	c := Checkpoint{Origin: "batchaudit/orders", Size: b.Size(), Root: b.Root()}
	// During a rotation a checkpoint is signed by both keys; either verifies it.
	msg, err := c.Sign(signer(oldSK), signer(newSK))
	require.NoError(t, err)
	for _, vk := range []string{oldVK, newVK} {
		got, n, err := Open(msg, note.VerifierList(verifier(vk)))
		require.NoError(t, err)
		assert.Equal(t, c, got)
		assert.Len(t, n.Sigs, 1)
	}
	// An independent parser reads the same checkpoint.
	cp, _, _, err := tdlog.ParseCheckpoint(msg, "batchaudit/orders", verifier(newVK))
	require.NoError(t, err)
	assert.Equal(t, uint64(10), cp.Size)
	assert.Equal(t, c.Root[:], cp.Hash)

	// Altered text or an unknown key fails.
	tampered := []byte(string(msg))
	tampered[len("batchaudit/orders\n")] = '9'
	_, _, err = Open(tampered, note.VerifierList(verifier(newVK)))
	assert.Error(t, err)
	_, _, otherVK, _ := func() (string, string, string, error) {
		sk, vk, err := note.GenerateKey(rand.Reader, "someone.else")
		return sk, "", vk, err
	}()
	_, _, err = Open(msg, note.VerifierList(verifier(otherVK)))
	assert.Error(t, err)
}

func TestParseBodyRejectsMalformed(t *testing.T) {
	root := "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
	for _, text := range []string{
		"", "o\n1\n", "o\n-1\n" + root + "\n", "o\n01\n" + root + "\n", "o\n1\nnotbase64\n", "\n1\n" + root + "\n", "o\n1\n" + root,
	} {
		_, err := ParseBody(text)
		assert.Error(t, err, "%q", text)
	}
	c, err := ParseBody("o\n0\n" + root + "\nextension line\n")
	require.NoError(t, err)
	assert.Equal(t, EmptyRoot(), c.Root)
}

func TestLeafDataBindsEverything(t *testing.T) {
	base := LeafHash("orders", 5, KindEvent, "ab")
	for _, other := range []tlog.Hash{
		LeafHash("orders2", 5, KindEvent, "ab"),
		LeafHash("orders", 6, KindEvent, "ab"),
		LeafHash("orders", 5, KindDeadLetter, "ab"),
		LeafHash("orders", 5, KindEvent, "ac"),
	} {
		assert.NotEqual(t, base, other)
	}
	assert.Equal(t, "batchaudit-leaf/v1\norders\n5\nevent\nab\n", string(LeafData("orders", 5, KindEvent, "ab")))
	// LeafHash hashes without tlog; it must be tlog's record hash, also
	// for leaves longer than its buffer.
	long := strings.Repeat("s", 300)
	for _, l := range [][4]string{{"orders", "5", "event", "ab"}, {long, "9", "gap", long}} {
		seq, _ := strconv.ParseInt(l[1], 10, 64)
		assert.Equal(t, tlog.RecordHash(LeafData(l[0], seq, Kind(l[2]), l[3])), LeafHash(l[0], seq, Kind(l[2]), l[3]))
	}
}
