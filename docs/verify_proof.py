#!/usr/bin/env python3
"""Check a batchaudit proof bundle offline, with the verifier key and nothing else.

Usage: python3 docs/verify_proof.py BUNDLE VERIFIER_KEY [--origin-prefix P]

BUNDLE is the JSON file `batchaudit prove` wrote; VERIFIER_KEY is the verifier key
`batchaudit keygen` printed (name+keyhash+base64), or a file holding it. Exit 0 when the
bundle proves that its document is entry `sequence` of the signed log of `stream`, 1 when
it does not (the reason is printed), 2 on a usage error.

This is the five steps of docs/integrity.md ("Proof bundles") written out for readers
outside Go: the standard library, plus the `cryptography` package for Ed25519. Hashing is
RFC 6962 (leaf 0x00, node 0x01); proofs are checked as RFC 9162 sections 2.1.3.2
(inclusion) and 2.1.4.2 (consistency) describe; checkpoints are c2sp.org/tlog-checkpoint
signed notes (c2sp.org/signed-note).
"""

import argparse
import base64
import binascii
import hashlib
import json
import os
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

BUNDLE_FORMAT = "batchaudit-proof/v1"
KINDS = ("event", "dead_letter", "gap")
ALG_ED25519 = 1


class Invalid(Exception):
    """The bundle does not prove what it claims."""


def sha256(data):
    return hashlib.sha256(data).digest()


def node_hash(left, right):
    return sha256(b"\x01" + left + right)


# Step 3: signed notes and checkpoints.

class VerifierKey:
    """A verifier key: <name>+<key hash, 8 hex digits>+<base64 of 0x01 || Ed25519 public key>."""

    def __init__(self, text):
        parts = text.strip().split("+", 2)  # the base64 key may hold "+" too
        if len(parts) != 3 or not parts[0]:
            raise ValueError("a verifier key is name+keyhash+key (as `batchaudit keygen` prints)")
        self.name, hash_hex, key_b64 = parts
        try:
            key = base64.b64decode(key_b64, validate=True)
            self.key_hash = int(hash_hex, 16)
        except (binascii.Error, ValueError) as e:
            raise ValueError("malformed verifier key: %s" % e)
        if len(hash_hex) != 8 or len(key) != 33 or key[0] != ALG_ED25519:
            raise ValueError("not an Ed25519 verifier key")
        # The key hash is the first 4 bytes of SHA-256(name || "\n" || 0x01 || public key).
        if int.from_bytes(sha256(self.name.encode() + b"\n" + key)[:4], "big") != self.key_hash:
            raise ValueError("the verifier key's hash does not match its name and key")
        self.public = Ed25519PublicKey.from_public_bytes(key[1:])


def open_note(signed, key):
    """Return the text of a signed note that key signed; raise Invalid otherwise."""
    split = signed.rfind("\n\n")
    if split < 0:
        raise Invalid("the checkpoint is not a signed note (no blank line before its signatures)")
    text, sigs = signed[: split + 1], signed[split + 2:]
    if not sigs.endswith("\n"):
        raise Invalid("the checkpoint's signature lines do not end with a newline")
    verified = False
    for line in sigs[:-1].split("\n"):
        if not line.startswith("\u2014 "):
            raise Invalid("malformed signature line %r" % line)
        fields = line[2:].split(" ")
        if len(fields) != 2:
            raise Invalid("malformed signature line %r" % line)
        name, sig_b64 = fields
        try:
            sig = base64.b64decode(sig_b64, validate=True)
        except binascii.Error:
            raise Invalid("signature of %s is not base64" % name)
        if len(sig) < 5:
            raise Invalid("signature of %s is too short" % name)
        if name != key.name or int.from_bytes(sig[:4], "big") != key.key_hash:
            continue  # another key (a witness, or the other key of a rotation)
        try:
            key.public.verify(sig[4:], text.encode())
        except InvalidSignature:
            raise Invalid("the checkpoint's signature by %s does not verify" % name)
        verified = True
    if not verified:
        raise Invalid("the checkpoint is not signed by %s" % key.name)
    return text


def parse_checkpoint(text):
    """Origin, size and root of a checkpoint's text (extension lines are ignored)."""
    lines = text.split("\n")
    if len(lines) < 4:
        raise Invalid("a checkpoint has origin, size and root lines")
    origin, size_text, root_b64 = lines[0], lines[1], lines[2]
    if not origin:
        raise Invalid("the checkpoint has no origin")
    if not size_text.isdigit() or str(int(size_text)) != size_text:
        raise Invalid("bad tree size %r" % size_text)
    try:
        root = base64.b64decode(root_b64, validate=True)
    except binascii.Error:
        root = b""
    if len(root) != 32:
        raise Invalid("bad root hash %r" % root_b64)
    return origin, int(size_text), root


def checkpoint(signed, key, origin):
    text = open_note(signed, key)
    got, size, root = parse_checkpoint(text)
    if got != origin:
        raise Invalid("the checkpoint's origin is %r, want %r" % (got, origin))
    return size, root


# Steps 4 and 5: RFC 9162 proofs.

def check_inclusion(index, size, leaf, proof, root):
    if index >= size:
        raise Invalid("leaf %d is not in a tree of size %d" % (index, size))
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise Invalid("the inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0 or r != root:
        raise Invalid("the inclusion proof does not lead to the checkpoint's root")


def check_consistency(first, first_root, second, second_root, proof):
    if first > second:
        raise Invalid("the older checkpoint (size %d) is larger than the newer (%d)" % (first, second))
    if first == 0:
        return  # the empty tree is a prefix of every tree
    if first == second:
        if first_root != second_root:
            raise Invalid("two checkpoints of size %d with different roots: the log forked" % first)
        if proof:
            raise Invalid("a consistency proof between trees of the same size must be empty")
        return
    if first & (first - 1) == 0:
        proof = [first_root] + list(proof)
    if not proof:
        raise Invalid("the consistency proof is empty")
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            raise Invalid("the consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr != first_root or sr != second_root:
        raise Invalid("the consistency proof does not connect the two checkpoints: the log was rewritten")


def hashes(items, what):
    out = []
    for i, s in enumerate(items or []):
        try:
            h = base64.b64decode(s, validate=True)
        except (binascii.Error, TypeError):
            h = b""
        if len(h) != 32:
            raise Invalid("%s hash %d is not 32 bytes of base64" % (what, i))
        out.append(h)
    return out


def verify(bundle, key, origin_prefix):
    """Check the bundle (steps 1 to 5 of docs/integrity.md); return a summary or raise Invalid."""
    if bundle.get("format") != BUNDLE_FORMAT:
        raise Invalid("bundle format %r, want %r" % (bundle.get("format"), BUNDLE_FORMAT))
    stream, seq, kind = bundle.get("stream"), bundle.get("sequence"), bundle.get("kind")
    document, claimed = bundle.get("document"), bundle.get("hash")
    if not isinstance(stream, str) or type(seq) is not int or seq < 1 or kind not in KINDS:
        raise Invalid("the bundle names kind %r at sequence %r of stream %r" % (kind, seq, stream))
    if not isinstance(document, str) or not isinstance(claimed, str):
        raise Invalid("the bundle has no document or hash")
    # 1. The document hashes to the bundle's hash.
    if sha256(document.encode("utf-8")).hex() != claimed:
        raise Invalid("the document does not hash to the bundle's hash")
    # 2. The leaf binds stream, sequence, kind and hash.
    leaf_data = "batchaudit-leaf/v1\n%s\n%d\n%s\n%s\n" % (stream, seq, kind, claimed)
    leaf = sha256(b"\x00" + leaf_data.encode("utf-8"))
    # 3. The checkpoint is signed by the key, for this stream.
    origin = origin_prefix + stream
    size, root = checkpoint(bundle.get("checkpoint") or "", key, origin)
    # 4. The inclusion proof leads from the leaf to the checkpoint's root.
    check_inclusion(seq - 1, size, leaf, hashes(bundle.get("inclusion"), "inclusion proof"), root)
    summary = "the %s is entry %d of stream %s, included in the checkpoint of size %d signed by %s" % (
        kind, seq, stream, size, key.name)
    # 5. The checkpoint extends an older one.
    cons = bundle.get("consistency")
    if cons is not None:
        old_size, old_root = checkpoint(cons.get("from") or "", key, origin)
        check_consistency(old_size, old_root, size, root, hashes(cons.get("proof"), "consistency proof"))
        summary += ", which extends the checkpoint of size %d" % old_size
    return summary


def main(argv):
    ap = argparse.ArgumentParser(description="Check a batchaudit proof bundle offline (docs/integrity.md).")
    ap.add_argument("bundle", help="the bundle `batchaudit prove` wrote")
    ap.add_argument("key", help="the verifier key (text, or a file holding it)")
    ap.add_argument("--origin-prefix", default="batchaudit/", help="checkpoint origin prefix (origin = prefix + stream)")
    args = ap.parse_args(argv)
    key_text = args.key
    if os.path.isfile(args.key):
        with open(args.key, encoding="utf-8") as f:
            key_text = f.read()
    try:
        key = VerifierKey(key_text)
    except ValueError as e:
        ap.error(str(e))
    try:
        with open(args.bundle, encoding="utf-8") as f:
            bundle = json.load(f)
        if not isinstance(bundle, dict):
            raise Invalid("the bundle is not a JSON object")
        summary = verify(bundle, key, args.origin_prefix)
    except (Invalid, ValueError, OSError) as e:
        print("FAILED: %s" % e)
        return 1
    print("OK: %s." % summary)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
