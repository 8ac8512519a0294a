package merkle

import (
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// Builder appends leaves to a tree held as its right edge: the last complete
// node of every level (the compact range is a subset of them) and the
// bottom-level hashes of the partial tile of every tile level. Appending is
// O(log n) hashes; memory is O(log n) plus one tile per tile level.
type Builder struct {
	n int64
	// last[l] is the most recent complete node at level l: every left
	// sibling an append needs, and every subtree root of the tree's size.
	last [64]tlog.Hash
	// edge[L] holds the hashes of level L*TileHeight of the tile being
	// filled at tile level L (the tile index is (index of edge[L][0]) >> 8).
	edge [][]tlog.Hash
	// done holds tiles completed since the last Tiles call.
	done []Tile
	// from is the size at the last Tiles call.
	from int64
}

// Tile is a tile to store: which one (H, L, N, W as in tlog) and its data,
// W hashes of level L*H.
type Tile struct {
	tlog.Tile
	Data []byte
}

// Size is the number of leaves.
func (b *Builder) Size() int64 { return b.n }

// Append adds the leaf hash h as leaf Size().
func (b *Builder) Append(h tlog.Hash) {
	idx, level := b.n, 0
	for idx&1 == 1 {
		// A right child: its left sibling is the level's last complete node,
		// and together they complete their parent.
		left := b.last[level]
		b.record(level, idx, h)
		h = tlog.NodeHash(left, h)
		idx >>= 1
		level++
	}
	b.record(level, idx, h)
	b.n++
}

// record notes node (level, idx) = h: it is now the last complete node of
// its level, and at a tile's bottom level it joins that tile.
func (b *Builder) record(level int, idx int64, h tlog.Hash) {
	b.last[level] = h
	if level%TileHeight != 0 {
		return
	}
	L := level / TileHeight
	for len(b.edge) <= L {
		b.edge = append(b.edge, nil)
	}
	pos := idx % (1 << TileHeight)
	if pos == 0 {
		b.edge[L] = b.edge[L][:0]
	}
	if int64(len(b.edge[L])) != pos {
		// Leaves are appended in order, so the tile fills in order.
		panic(fmt.Sprintf("merkle: tile level %d expected position %d, got %d", L, len(b.edge[L]), pos))
	}
	b.edge[L] = append(b.edge[L], h)
	if pos == 1<<TileHeight-1 {
		b.done = append(b.done, Tile{
			Tile: tlog.Tile{H: TileHeight, L: L, N: idx >> TileHeight, W: 1 << TileHeight},
			Data: hashBytes(b.edge[L]),
		})
	}
}

// Root is the tree hash of the current size (RFC 6962 MTH).
func (b *Builder) Root() tlog.Hash {
	if b.n == 0 {
		return emptyRoot
	}
	var h tlog.Hash
	first := true
	for level := 0; level < 64; level++ {
		if b.n&(1<<level) == 0 {
			continue
		}
		// The subtree of size 2^level at the right end is the last complete
		// node of that level; larger subtrees lie further left.
		if first {
			h, first = b.last[level], false
		} else {
			h = tlog.NodeHash(b.last[level], h)
		}
	}
	return h
}

// Tree returns the size and root.
func (b *Builder) Tree() tlog.Tree { return tlog.Tree{N: b.n, Hash: b.Root()} }

// Tiles returns every tile that changed since the previous call (or since
// Load): completed tiles, then the partial tile of every tile level that grew,
// at its current width. Storing them keeps the stored tiles covering the tree.
func (b *Builder) Tiles() []Tile {
	out := b.done
	b.done = nil
	for L := range b.edge {
		e := b.edge[L]
		if len(e) == 0 || len(e) == 1<<TileHeight {
			continue // empty, or complete (already in done)
		}
		// The partial tile of level L changed if a node of its bottom level
		// was added since the last call.
		shift := uint(L * TileHeight)
		if b.n>>shift == b.from>>shift {
			continue
		}
		idx := (b.n >> shift) - 1 // its last node
		out = append(out, Tile{
			Tile: tlog.Tile{H: TileHeight, L: L, N: idx >> TileHeight, W: len(e)},
			Data: hashBytes(e),
		})
	}
	b.from = b.n
	return out
}

// Load rebuilds the right edge of a tree of size n from stored hashes read
// through r (e.g. tlog.TileHashReader over the stored tiles, which also
// checks them against a known root).
func Load(n int64, r tlog.HashReader) (*Builder, error) {
	b := &Builder{n: n, from: n}
	if n == 0 {
		return b, nil
	}
	var indexes []int64
	var levels []int
	for level := 0; level < 64 && n>>level > 0; level++ {
		indexes = append(indexes, tlog.StoredHashIndex(level, (n>>level)-1))
		levels = append(levels, level)
	}
	// The partial tile of every tile level, node by node.
	type slot struct{ L, i int }
	var slots []slot
	for L := 0; n>>(L*TileHeight) > 0; L++ {
		last := (n >> (L * TileHeight)) - 1
		start := last - last%(1<<TileHeight)
		if last-start+1 == 1<<TileHeight {
			b.edge = append(b.edge, nil) // complete: the next node starts a new tile
			continue
		}
		b.edge = append(b.edge, make([]tlog.Hash, last-start+1))
		for k := start; k <= last; k++ {
			indexes = append(indexes, tlog.StoredHashIndex(L*TileHeight, k))
			slots = append(slots, slot{L, int(k - start)})
		}
	}
	hashes, err := r.ReadHashes(indexes)
	if err != nil {
		return nil, fmt.Errorf("merkle: read the right edge of a tree of size %d: %w", n, err)
	}
	if len(hashes) != len(indexes) {
		return nil, fmt.Errorf("merkle: read %d hashes, want %d", len(hashes), len(indexes))
	}
	for i, level := range levels {
		b.last[level] = hashes[i]
	}
	for i, s := range slots {
		b.edge[s.L][s.i] = hashes[len(levels)+i]
	}
	return b, nil
}

// emptyRoot is the RFC 6962 hash of the empty tree, SHA-256("").
var emptyRoot = tlog.Hash{0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
	0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55}

func hashBytes(hs []tlog.Hash) []byte {
	out := make([]byte, 0, len(hs)*tlog.HashSize)
	for _, h := range hs {
		out = append(out, h[:]...)
	}
	return out
}
