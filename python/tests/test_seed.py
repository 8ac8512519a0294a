"""Code written against the seed's AuditLogger sends canonical events."""
from __future__ import annotations

import enum

import pytest

from batchaudit_jobaudit import conventions as c
from batchaudit_jobaudit.seed import AuditLogger


class ChangeType(enum.Enum):
    INSERT = "insert"


def test_seed_interface(trail) -> None:
    audit = AuditLogger(trail.auditor, actor_type="scheduler")
    audit.start()
    with audit.batch_run("daily_etl", "scheduler", {"full": True}) as batch:
        audit.log_record_read("sales.orders", "A-1", {"id": "A-1", "amount": 5})
        audit.log_record_write("dw.orders", "A-1", {"id": "A-1", "amount": 5}, ChangeType.INSERT)
        audit.log_record_skip("sales.orders", "A-2", "Filtered by transformer")
        audit.log_record_error("sales.orders", "A-3", ValueError("bad"))
        audit.log_checkpoint({"records_processed": 3, "last_id": "A-3"})
    assert batch.status == "completed" and batch.records_read == 1 and batch.records_errored == 1
    assert batch.sources == ["sales.orders"] and batch.targets == ["dw.orders"]
    events = trail.events()
    assert [e.event_name for e in events] == [c.BATCH_START, c.RECORD_READ, c.RECORD_WRITE, c.RECORD_SKIP,
                                              c.RECORD_ERROR, c.CHECKPOINT, c.BATCH_END]
    attrs = [dict(e.attributes) for e in events]
    assert all(a[c.BATCH_ID] == batch.batch_id and a[c.USER_ID] == "scheduler" for a in attrs)
    assert attrs[5][c.CHECKPOINT_POSITION] == "last_id=A-3" and attrs[5][c.CHECKPOINT_RECORDS] == 3
    assert c.CHANGE_TYPE not in attrs[2], "the collector classifies changes itself"
    audit.stop()


def test_seed_failure(trail) -> None:
    audit = AuditLogger(trail.auditor)
    with pytest.raises(KeyError):
        with audit.batch_run("daily_etl", "ops") as batch:
            raise KeyError("id")
    assert batch.status == "failed"
    assert trail.attrs()[-1][c.BATCH_RESULT] == "failure"
    with pytest.raises(RuntimeError, match="no batch run is active"):
        audit.log_record_read("s", "1", {})
