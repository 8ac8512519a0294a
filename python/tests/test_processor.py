"""The processor never drops audit events (a fake exporter injects the failures)."""
from __future__ import annotations

import threading
import time
from typing import Any, List

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

import batchaudit_jobaudit as ba


class FlakyExporter(LogRecordExporter):
    """Fails while `down` is set (raising or answering FAILURE); records what it delivered."""

    def __init__(self) -> None:
        self.down = False
        self.raise_ = False
        self.delivered: List[Any] = []
        self.calls = 0

    def export(self, batch):
        self.calls += 1
        if self.down:
            if self.raise_:
                raise ConnectionError("collector unreachable")
            return LogRecordExportResult.FAILURE
        self.delivered.extend(batch)
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def make(exp, **kw):
    p = ba.AuditLogRecordProcessor(exp, schedule_delay=60, retry_interval=0.01, shutdown_timeout=0.05, **kw)
    lp = LoggerProvider()
    lp.add_log_record_processor(p)
    a = ba.Auditor(lp)
    a._processor = p
    return a, p


@pytest.mark.parametrize("raise_", [False, True])
def test_failed_batches_are_kept_and_resent(raise_) -> None:
    exp = FlakyExporter()
    exp.down, exp.raise_ = True, raise_
    auditor, p = make(exp, max_batch_size=4)
    run = auditor.start_run("j")
    for i in range(9):
        run.read("s", str(i), {"i": i})
    assert exp.delivered == [] and p.buffered == 10
    exp.down = False
    run.end()
    auditor.shutdown()
    assert len(exp.delivered) == 11, "nothing was dropped"
    ids = [r.log_record.attributes["batchaudit.record.id"] for r in exp.delivered if "batchaudit.record.id" in r.log_record.attributes]
    assert ids == [str(i) for i in range(9)], "in order"


def test_full_queue_blocks_the_job_until_delivered() -> None:
    exp = FlakyExporter()
    exp.down = True
    auditor, p = make(exp, max_batch_size=2, max_queue_batches=2)
    run = auditor.start_run("j")
    run.read("s", "1", {})
    run.read("s", "2", {})  # 4 buffered: the queue is full, this emit blocks
    done = threading.Event()

    def job():
        run.read("s", "3", {})
        done.set()

    threading.Thread(target=job, daemon=True).start()
    time.sleep(0.2)
    assert not done.is_set(), "the job waits instead of dropping"
    exp.down = False
    assert done.wait(2)
    run.end()
    auditor.shutdown()
    assert len(exp.delivered) == 5


def test_max_block_raises_instead_of_dropping() -> None:
    exp = FlakyExporter()
    exp.down = True
    auditor, p = make(exp, max_batch_size=1, max_queue_batches=1, max_block=0.05)
    with pytest.raises(ba.UndeliveredEventsError):
        auditor.start_run("j")
    assert p.buffered == 1


def test_shutdown_reports_undelivered() -> None:
    exp = FlakyExporter()
    exp.down = True
    auditor, p = make(exp)
    with auditor.run("j") as run:
        run.read("s", "1", {})
    with pytest.raises(ba.UndeliveredEventsError, match="3 audit event"):
        auditor.shutdown()
    assert p.undelivered == 3
