"""RFC 8785 (JCS) canonical JSON and the record hash, standard library only.

``record_hash(record)`` is the lowercase hex SHA-256 of the record's canonical JSON: the value of
``batchaudit.record.hash``. It equals what the collector and the Go package compute (the Go tests
run this file over ``canonical/testdata/vectors.json``).

Run as a script it hashes every vector of a JSON array read from stdin, one digest per line:
``python3 canonical.py < vectors.json``.
"""
from __future__ import annotations

import hashlib
import json
import math
import sys
from typing import Any

__all__ = ["canonical", "record_hash"]


def _number(x: int | float) -> str:
    if isinstance(x, bool):
        raise TypeError("bool is not a number")
    if isinstance(x, int):
        if abs(x) > 2**53:
            raise ValueError("integer beyond 2^53: send it as a string")
        return str(x)
    if math.isnan(x) or math.isinf(x):
        raise ValueError("NaN/Infinity are not JSON")
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    # repr() gives the shortest round-trip digits; rewrite them the ECMAScript way.
    mant, _, exp_s = repr(abs(x)).partition("e")
    exp = int(exp_s) if exp_s else 0
    whole, _, frac = mant.partition(".")
    digits = (whole + frac).lstrip("0")
    point = len(whole) + exp - (len(whole + frac) - len(digits))
    digits = digits.rstrip("0") or "0"
    k, n = len(digits), point
    if k <= n <= 21:
        s = digits + "0" * (n - k)
    elif 0 < n <= 21:
        s = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        s = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        s = digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + ("+" if e >= 0 else "-") + str(abs(e))
    return sign + s


_ESCAPES = {8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r"}


def _string(s: str) -> str:
    out = ['"']
    for ch in s:
        c = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif c < 0x20:
            out.append(_ESCAPES.get(c, "\\u%04x" % c))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def canonical(v: Any) -> str:
    """The RFC 8785 canonical JSON text of v (None, bool, int, float, str, list/tuple, dict)."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return _number(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(canonical(e) for e in v) + "]"
    if isinstance(v, dict):
        for k in v:
            if not isinstance(k, str):
                raise TypeError("object keys must be strings, got %r" % type(k))
        keys = sorted(v, key=lambda k: k.encode("utf-16-be"))  # UTF-16 code unit order
        return "{" + ",".join(_string(k) + ":" + canonical(v[k]) for k in keys) + "}"
    raise TypeError("unsupported type %r" % type(v))


def record_hash(record: Any) -> str:
    """Lowercase hex SHA-256 of the canonical JSON of record (UTF-8)."""
    return hashlib.sha256(canonical(record).encode("utf-8")).hexdigest()


if __name__ == "__main__":
    for vector in json.load(sys.stdin):
        print(record_hash(vector))
