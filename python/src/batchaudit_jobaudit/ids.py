"""Time-ordered UUIDs (RFC 9562 version 7) for run and event ids."""
from __future__ import annotations

import os
import time
import uuid


def new_id() -> str:
    """A new UUIDv7: 48 bits of Unix milliseconds, then random bits.

    It is a valid OpenLineage run id (a UUID) and sorts by creation time, like the Go
    package's ids.
    """
    ms = time.time_ns() // 1_000_000
    b = bytearray(ms.to_bytes(6, "big") + os.urandom(10))
    b[6] = 0x70 | (b[6] & 0x0F)  # version 7
    b[8] = 0x80 | (b[8] & 0x3F)  # RFC 9562 variant
    return str(uuid.UUID(bytes=bytes(b)))
