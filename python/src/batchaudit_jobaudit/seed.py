"""An adapter for code written against the seed's ``AuditLogger`` interface.

Jobs that call ``audit.batch_run(...)``, ``audit.log_record_read(...)`` and friends (the audit logger
of "how to build batch audit") keep their code and send canonical events through batchaudit::

    audit = AuditLogger(batchaudit_jobaudit.setup(service_name="daily_etl"))
    audit.start()
    with audit.batch_run("daily_etl", "scheduler") as batch:
        audit.log_record_read("sales.orders", "A-1", row)
        audit.log_record_write("dw.orders", "A-1", out, ChangeType.INSERT)
    audit.stop()

Differences, on purpose: change types and old values are not sent (the collector classifies every
write itself, from durable per-record hashes, and keeps the previous version); record hashes are the
canonical RFC 8785 ones, not ``json.dumps(sort_keys=True)``; a failure ends the run as failed with the
error on the batch end event; ``stop()`` raises ``UndeliveredEventsError`` if events were not delivered.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, Iterator, List, Optional

from .run import Auditor, Run

__all__ = ["AuditLogger", "BatchRun"]


@dataclass
class BatchRun:
    """The seed's BatchRun: the run's id, job, status and counters (read-only mirror)."""

    batch_id: str
    job_name: str
    actor: str
    config: Dict[str, Any] = field(default_factory=dict)
    start_time: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    end_time: Optional[datetime] = None
    status: str = "running"
    records_read: int = 0
    records_written: int = 0
    records_skipped: int = 0
    records_errored: int = 0
    sources: List[str] = field(default_factory=list)
    targets: List[str] = field(default_factory=list)


class AuditLogger:
    """The seed's AuditLogger methods on top of a batchaudit ``Auditor``."""

    def __init__(self, auditor: Auditor, actor_type: str = "") -> None:
        self.auditor = auditor
        self.actor_type = actor_type
        self._run: Optional[Run] = None
        self._batch: Optional[BatchRun] = None

    def start(self) -> None:
        """Nothing to start: the OpenTelemetry processor exports in the background."""

    def stop(self) -> None:
        """Flushes and shuts down; raises UndeliveredEventsError if events were not delivered."""
        self.auditor.shutdown()

    @contextlib.contextmanager
    def batch_run(self, job_name: str, actor: str, config: Optional[Dict[str, Any]] = None) -> Iterator[BatchRun]:
        run = self.auditor.start_run(job_name, actor_id=actor or None, actor_type=self.actor_type or None)
        batch = BatchRun(batch_id=run.batch_id, job_name=job_name, actor=actor, config=dict(config or {}))
        self._run, self._batch = run, batch
        try:
            with run:
                yield batch
            batch.status = "completed"
        except BaseException:
            batch.status = "failed"
            raise
        finally:
            batch.end_time = datetime.now(timezone.utc)
            self._sync()
            self._run = self._batch = None

    def _active(self) -> Run:
        if self._run is None:
            raise RuntimeError("no batch run is active: call inside `with audit.batch_run(...)`")
        return self._run

    def _sync(self) -> None:
        if self._run is not None and self._batch is not None:
            n = self._run.counts
            b = self._batch
            b.records_read, b.records_written, b.records_skipped, b.records_errored = n.read, n.written, n.skipped, n.errored

    def log_record_read(self, source: str, record_id: str, record: Dict[str, Any]) -> None:
        self._active().read(source, record_id, record)
        if self._batch is not None and source not in self._batch.sources:
            self._batch.sources.append(source)
        self._sync()

    def log_record_write(self, target: str, record_id: str, record: Dict[str, Any], change_type: Any = None,
                         old_value: Optional[Dict[str, Any]] = None) -> None:
        self._active().write(target, record_id, record)
        if self._batch is not None and target not in self._batch.targets:
            self._batch.targets.append(target)
        self._sync()

    def log_record_skip(self, source: str, record_id: str, reason: str) -> None:
        self._active().skip(record_id, reason)
        self._sync()

    def log_record_error(self, source: str, record_id: str, error: BaseException) -> None:
        self._active().error(record_id, error)
        self._sync()

    def log_checkpoint(self, checkpoint_data: Dict[str, Any]) -> None:
        data = dict(checkpoint_data)
        cid = data.pop("checkpoint_id", None) or data.pop("id", None)
        position = data.pop("position", None)
        processed = data.pop("records_processed", None)
        if cid is None and position is None:
            # The seed's checkpoints are free-form: keep them as the position text.
            position = ",".join("%s=%s" % (k, data[k]) for k in sorted(data)) or "checkpoint"
        self._active().checkpoint(id=str(cid) if cid is not None else None,
                                  position=str(position) if position is not None else None,
                                  processed=int(processed) if processed is not None else None)
        self.auditor.flush()
