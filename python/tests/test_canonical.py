"""The record hash equals Go's on the shared golden vectors (canonical/testdata)."""
from __future__ import annotations

import json
import math
import pathlib

import pytest

from batchaudit_jobaudit import canonical, record_hash

TESTDATA = pathlib.Path(__file__).resolve().parents[2] / "canonical" / "testdata"


def test_golden_vectors() -> None:
    vectors = json.loads((TESTDATA / "vectors.json").read_text(encoding="utf-8"))
    golden = (TESTDATA / "vectors.sha256").read_text().split()
    assert len(vectors) == len(golden) == 10
    assert [record_hash(v) for v in vectors] == golden


def test_docs_example_and_key_order() -> None:
    row = {"order_id": "A-1001", "customer": "ACME GmbH", "amount": 1250.5, "currency": "EUR", "qty": 3}
    assert record_hash(row) == "ec4f3090ddca38d98c1ed38d9bf37b2a9a9376bda32cf753aa60783854f80bbb"
    assert record_hash(dict(reversed(list(row.items())))) == record_hash(row)


@pytest.mark.parametrize("value,text", [
    (100.0, "100"), (1e-7, "1e-7"), (1e21, "1e+21"), (1e20, "100000000000000000000"), (0.000001, "0.000001"),
    (-0.0, "0"), (123456789012345.6, "123456789012345.6"), (5e-324, "5e-324"), ("\u2028\x7f", '"\u2028\x7f"'),
    ({"\u00f6": 1, "\U0001F600": 2, "\ufb33": 3}, '{"\u00f6":1,"\U0001F600":2,"\ufb33":3}'),
])
def test_number_and_key_forms(value: object, text: str) -> None:
    assert canonical(value) == text


@pytest.mark.parametrize("bad", [math.nan, math.inf, 2**53 + 1, {1: "a"}, {"a": {1, 2}}])
def test_not_canonical(bad: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        canonical(bad)
