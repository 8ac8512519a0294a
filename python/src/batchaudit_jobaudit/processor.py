"""A log record processor for audit events that never drops one."""
from __future__ import annotations

import copy
import logging
import threading
import time
from typing import Any, List, Optional

from opentelemetry.context import Context
from opentelemetry.sdk._logs import LogRecordProcessor, ReadableLogRecord, ReadWriteLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter
from opentelemetry.sdk.resources import Resource

__all__ = ["AuditLogRecordProcessor", "UndeliveredEventsError"]

_log = logging.getLogger(__name__)


class UndeliveredEventsError(RuntimeError):
    """Audit events could not be delivered: the run's audit trail is incomplete."""

    def __init__(self, count: int, cause: Optional[BaseException] = None) -> None:
        super().__init__(
            "batchaudit: %d audit event(s) could not be delivered%s" % (count, ": %s" % cause if cause else "")
        )
        self.count = count
        self.cause = cause


class AuditLogRecordProcessor(LogRecordProcessor):
    """Batches audit events and never drops one.

    The SDK's ``BatchLogRecordProcessor`` drops records when its queue is full. This one exports a full
    batch on the emitting thread, so a slow collector slows the job down instead of losing its audit
    trail. A batch whose export failed stays buffered and goes out with the next one; once
    ``max_queue_batches`` batches are buffered, emitting blocks and retries every ``retry_interval``
    seconds until the collector takes them (or ``max_block`` seconds passed: then the emit raises
    ``UndeliveredEventsError``). Whatever is buffered is exported every ``schedule_delay`` seconds.
    ``shutdown()`` flushes and records what could not be delivered in ``undelivered``; ``Auditor.shutdown``
    raises ``UndeliveredEventsError`` for it. Same behaviour as the Go package's ``jobaudit.NewProcessor``.
    """

    def __init__(
        self,
        exporter: LogRecordExporter,
        max_batch_size: int = 512,
        schedule_delay: float = 1.0,
        *,
        max_queue_batches: int = 64,
        retry_interval: float = 1.0,
        max_block: Optional[float] = None,
        shutdown_timeout: float = 10.0,
    ) -> None:
        if max_batch_size <= 0:
            raise ValueError("max_batch_size must be positive")
        self._exporter = exporter
        self._size = max_batch_size
        self._max_queue = max_queue_batches * max_batch_size
        self._retry_interval = retry_interval
        self._max_block = max_block
        self._shutdown_timeout = shutdown_timeout
        self._lock = threading.RLock()
        self._buf: List[ReadableLogRecord] = []
        self.last_error: Optional[BaseException] = None
        self.undelivered = 0
        self._stop = threading.Event()
        self._shut = False
        self._thread = threading.Thread(
            target=self._loop, args=(schedule_delay if schedule_delay > 0 else 1.0,),
            name="batchaudit-audit-export", daemon=True,
        )
        self._thread.start()

    def _loop(self, delay: float) -> None:
        while not self._stop.wait(delay):
            self.force_flush()

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:  # type: ignore[override]
        # Like the SDK's batch processor: a readable copy without the context.
        api_record = copy.copy(log_record.log_record)
        api_record.context = Context()
        readable = ReadableLogRecord(
            log_record=api_record,
            resource=log_record.resource if log_record.resource is not None else Resource.create({}),
            instrumentation_scope=log_record.instrumentation_scope,
            limits=log_record.limits,
        )
        with self._lock:
            if self._shut:
                # Never silent: an event after shutdown is undelivered.
                self.undelivered += 1
                _log.error("batchaudit: audit event emitted after shutdown; it is not delivered")
                return
            self._buf.append(readable)
            if len(self._buf) < self._size:
                return
            ok = self._export_locked()
            deadline = None if self._max_block is None else time.monotonic() + self._max_block
            while not ok and len(self._buf) >= self._max_queue:
                if deadline is not None and time.monotonic() >= deadline:
                    raise UndeliveredEventsError(len(self._buf), self.last_error)
                time.sleep(self._retry_interval)
                ok = self._export_locked()

    def _export_locked(self) -> bool:
        if not self._buf:
            return True
        try:
            result: Any = self._exporter.export(list(self._buf))
        except Exception as exc:  # pylint: disable=broad-exception-caught
            self.last_error = exc
            _log.warning("batchaudit: exporting %d audit events failed, kept for the next try: %s", len(self._buf), exc)
            return False
        if getattr(result, "name", None) != "SUCCESS":
            self.last_error = RuntimeError("exporter answered %s" % (result,))
            _log.warning("batchaudit: exporting %d audit events failed (%s), kept for the next try", len(self._buf), result)
            return False
        self._buf.clear()
        self.last_error = None
        return True

    @property
    def buffered(self) -> int:
        """Audit events not yet delivered."""
        with self._lock:
            return len(self._buf)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Exports everything buffered; False if that failed (the events stay buffered)."""
        with self._lock:
            if not self._export_locked():
                return False
        return bool(self._exporter.force_flush(timeout_millis))

    def shutdown(self) -> None:
        """Flushes (retrying for up to ``shutdown_timeout`` seconds), stops the exporter and counts what
        could not be delivered in ``undelivered``."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()
        with self._lock:
            if self._shut:
                return
            self._shut = True
            deadline = time.monotonic() + self._shutdown_timeout
            while not self._export_locked() and time.monotonic() + self._retry_interval < deadline:
                time.sleep(self._retry_interval)
            self.undelivered += len(self._buf)
            self._buf.clear()
        self._exporter.shutdown()
