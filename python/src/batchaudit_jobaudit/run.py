"""Batch runs: the audit events of one execution of a job."""
from __future__ import annotations

import asyncio
import contextvars
import datetime as _dt
import decimal
import functools
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Sequence, TypeVar, Union, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry._logs import LoggerProvider, SeverityNumber
from opentelemetry.trace import Status, StatusCode, TracerProvider

from . import conventions as c
from .canonical import record_hash
from .ids import new_id

__all__ = ["Auditor", "Run", "Dataset", "Step", "Counts", "current_run"]

_SCOPE = "batchaudit_jobaudit"

Record = Mapping[str, Any]
DatasetLike = Union["Dataset", str]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Dataset:
    """A source or target, OpenLineage style: ``Dataset("sales.orders", "postgres://db:5432")``."""

    name: str
    namespace: str = ""


@dataclass(frozen=True)
class Step:
    """A transformation step. ``type`` is DIRECT or INDIRECT, ``subtype`` one of IDENTITY,
    TRANSFORMATION, AGGREGATION, JOIN, GROUP_BY, FILTER, SORT, WINDOW, CONDITIONAL (OpenLineage terms)."""

    name: str
    sequence: int = 0
    type: str = ""
    subtype: str = ""
    params: Optional[Mapping[str, Any]] = None


@dataclass
class Counts:
    read: int = 0
    written: int = 0
    skipped: int = 0
    errored: int = 0


def _dataset(d: DatasetLike) -> Dataset:
    return Dataset(d) if isinstance(d, str) else d


def _plain(v: Any) -> Any:
    """The JSON value a record field is hashed and sent as.

    Dates and times become ISO 8601 strings, Decimal and UUID their text, tuples lists, numpy-style
    scalars their Python value. Anything else that is not JSON raises TypeError.
    """
    if v is None or isinstance(v, (bool, str, int, float)):
        return v
    if isinstance(v, Mapping):
        out = {}
        for k, x in v.items():
            if not isinstance(k, str):
                raise TypeError("record keys must be strings, got %r" % (k,))
            out[k] = _plain(x)
        return out
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, (_dt.datetime, _dt.date, _dt.time)):
        return v.isoformat()
    if isinstance(v, (decimal.Decimal, uuid.UUID)):
        return str(v)
    item = getattr(v, "item", None)  # numpy and pandas scalars
    if callable(item):
        return _plain(item())
    raise TypeError("record value of type %s is not JSON" % type(v).__name__)


def _error_type(exc: BaseException) -> str:
    t = type(exc)
    return t.__qualname__ if t.__module__ == "builtins" else "%s.%s" % (t.__module__, t.__qualname__)


_current: contextvars.ContextVar[Optional["Run"]] = contextvars.ContextVar("batchaudit_run", default=None)


def current_run() -> "Run":
    """The run of the innermost ``Auditor.job`` function (or ``with run:`` block) being executed."""
    run = _current.get()
    if run is None:
        raise LookupError("no batchaudit run is active here")
    return run


class Auditor:
    """Creates batch runs on an OpenTelemetry logger provider (and optionally a tracer provider).

    Use ``batchaudit_jobaudit.setup()`` for the usual OTLP setup; pass providers here to use your own.
    """

    def __init__(self, logger_provider: LoggerProvider, tracer_provider: Optional[TracerProvider] = None) -> None:
        self.logger_provider = logger_provider
        self._logger = logger_provider.get_logger(_SCOPE)
        self._tracer = tracer_provider.get_tracer(_SCOPE) if tracer_provider is not None else None
        self._processor: Any = None  # set by setup(): its undelivered count fails shutdown()
        self._tracer_provider = tracer_provider

    def start_run(
        self,
        job: str,
        *,
        batch_id: Optional[str] = None,
        parent_batch_id: Optional[str] = None,
        namespace: Optional[str] = None,
        actor_id: Optional[str] = None,
        actor_name: Optional[str] = None,
        actor_type: Optional[str] = None,
        frameworks: Optional[Sequence[str]] = None,
        classifications: Optional[Sequence[str]] = None,
    ) -> "Run":
        """Starts a run and emits its batch start event. Use the result as a context manager, or call
        ``end()``. ``batch_id`` defaults to a new UUIDv7; pass your orchestrator's run id (Airflow,
        OpenLineage) so all systems agree. ``actor_type`` is human, service or scheduler; frameworks
        (SOX, GDPR, HIPAA) and classifications (PII, PHI, financial) tag every event of the run."""
        common: Dict[str, Any] = {c.BATCH_ID: batch_id or new_id(), c.JOB_NAME: job}
        for k, v in ((c.JOB_NAMESPACE, namespace), (c.PARENT_BATCH_ID, parent_batch_id), (c.USER_ID, actor_id),
                     (c.USER_NAME, actor_name), (c.ACTOR_TYPE, actor_type)):
            if v:
                common[k] = v
        if frameworks:
            common[c.FRAMEWORKS] = list(frameworks)
        if classifications:
            common[c.CLASSIFICATION] = list(classifications)
        return Run(self, job, common)

    run = start_run

    def job(self, name: Optional[str] = None, **run_options: Any) -> Callable[[F], F]:
        """Decorates a plain function as a batch run: each call is one run, ended with the
        function's outcome (an exception ends it as failed and is re-raised). Inside, ``current_run()``
        returns the run. ``name`` defaults to the function's name; options are those of ``start_run``."""

        def wrap(fn: F) -> F:
            @functools.wraps(fn)
            def call(*args: Any, **kwargs: Any) -> Any:
                with self.start_run(name or fn.__name__, **run_options):
                    return fn(*args, **kwargs)

            return cast(F, call)

        return wrap

    def flush(self, timeout_millis: int = 30000) -> bool:
        return bool(getattr(self.logger_provider, "force_flush")(timeout_millis))

    def shutdown(self) -> None:
        """Flushes and shuts the providers down. Raises ``UndeliveredEventsError`` when audit events
        could not be delivered: treat that as a failed run, its audit trail is incomplete."""
        from .processor import UndeliveredEventsError

        if self._tracer_provider is not None:
            getattr(self._tracer_provider, "shutdown", lambda: None)()
        getattr(self.logger_provider, "shutdown")()
        p = self._processor
        if p is not None and p.undelivered:
            raise UndeliveredEventsError(p.undelivered, p.last_error)


class Run:
    """One batch run. Its methods are safe to call from several threads."""

    def __init__(self, auditor: Auditor, job: str, common: Dict[str, Any]) -> None:
        self._a = auditor
        self.job = job
        self._common = common
        self._lock = threading.Lock()
        self._counts = Counts()
        self._ended = False
        self._token: Optional[contextvars.Token[Optional[Run]]] = None
        self._span = None
        self._ctx = None
        if auditor._tracer is not None:
            attrs = dict(common)
            attrs[c.RUN_EVENTS] = c.RUN_EVENTS_AS_LOGS  # receivers must not derive the events again
            self._span = auditor._tracer.start_span("batch " + job, attributes=attrs)
            self._ctx = trace.set_span_in_context(self._span)
        self.start_time = time.time()
        self._emit(c.BATCH_START, SeverityNumber.INFO, {})

    @property
    def batch_id(self) -> str:
        """The run id (a UUID unless you passed your own): the OpenLineage run id of this run."""
        return cast(str, self._common[c.BATCH_ID])

    @property
    def counts(self) -> Counts:
        with self._lock:
            return Counts(**vars(self._counts))

    def __enter__(self) -> "Run":
        self._token = _current.set(self)
        return self

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
        self.end(exc)

    # Record events -----------------------------------------------------------------------------

    def read(self, source: DatasetLike, record_id: str, record: Optional[Record] = None, **options: Any) -> None:
        """A record was read from source."""
        self._count("read")
        attrs = self._dataset_attrs(c.SOURCE_NAMESPACE, c.SOURCE_NAME, source)
        attrs[c.RECORD_ID] = record_id
        self._emit_record(c.RECORD_READ, attrs, record, options)

    def transform(self, record_id: str, step: Union[Step, str], input: Optional[Record] = None,
                  output: Optional[Record] = None, **options: Any) -> None:
        """One transformation step: the hashes of its input and output let the collector check that
        the record's chain has no gaps."""
        step = Step(step) if isinstance(step, str) else step
        attrs: Dict[str, Any] = {c.RECORD_ID: record_id, c.TRANSFORM_NAME: step.name}
        if step.sequence:
            attrs[c.TRANSFORM_SEQUENCE] = step.sequence
        if step.type:
            attrs[c.TRANSFORM_TYPE] = step.type
        if step.subtype:
            attrs[c.TRANSFORM_SUBTYPE] = step.subtype
        if step.params:
            attrs[c.TRANSFORM_PARAMS] = _plain(step.params)
        if input is not None:
            try:
                attrs[c.INPUT_HASH] = record_hash(_plain(input))
            except (TypeError, ValueError, UnicodeError) as exc:
                self._hash_failed(record_id, exc)
                return
        self._emit_record(c.RECORD_TRANSFORM, attrs, output, options)

    def write(self, target: DatasetLike, record_id: str, record: Optional[Record] = None, **options: Any) -> None:
        """A record was written to target."""
        self._count("written")
        attrs = self._dataset_attrs(c.TARGET_NAMESPACE, c.TARGET_NAME, target)
        attrs[c.RECORD_ID] = record_id
        self._emit_record(c.RECORD_WRITE, attrs, record, options)

    def delete(self, target: DatasetLike, record_id: str, **options: Any) -> None:
        """The job deleted a record from target."""
        attrs = self._dataset_attrs(c.TARGET_NAMESPACE, c.TARGET_NAME, target)
        attrs[c.RECORD_ID] = record_id
        attrs[c.CHANGE_TYPE] = c.CHANGE_DELETE
        self._emit_record(c.RECORD_DELETE, attrs, None, options)

    def skip(self, record_id: str, reason: str, **options: Any) -> None:
        """A record was deliberately not processed, and why."""
        self._count("skipped")
        self._emit_record(c.RECORD_SKIP, {c.RECORD_ID: record_id, c.SKIP_REASON: reason}, None, options)

    def error(self, record_id: Optional[str], error: Union[BaseException, str], **options: Any) -> None:
        """Processing a record failed (record_id None: the failure is not about one record)."""
        self._count("errored")
        attrs: Dict[str, Any] = {}
        if record_id:
            attrs[c.RECORD_ID] = record_id
        attrs.update(_error_attrs(error))
        self._emit_record(c.RECORD_ERROR, attrs, None, options)

    def validate(self, rule: str, passed: bool, column: Optional[str] = None, expected: Any = None,
                 actual: Any = None) -> None:
        """The outcome of a data quality rule."""
        attrs: Dict[str, Any] = {c.VALIDATION_RULE: rule}
        if column:
            attrs[c.VALIDATION_COLUMN] = column
        if expected is not None:
            attrs[c.VALIDATION_EXPECTED] = _plain(expected)
        if actual is not None:
            attrs[c.VALIDATION_ACTUAL] = _plain(actual)
        name, sev = (c.VALIDATION_PASS, SeverityNumber.INFO) if passed else (c.VALIDATION_FAIL, SeverityNumber.WARN)
        self._emit(name, sev, attrs)

    def checkpoint(self, id: Optional[str] = None, position: Optional[str] = None,
                   processed: Optional[int] = None) -> None:
        """A restart point: an id and/or a position (offset, LSN, file:line), and the records
        processed so far (default: the records read)."""
        if not id and not position:
            raise ValueError("a checkpoint needs an id or a position")
        attrs: Dict[str, Any] = {c.CHECKPOINT_RECORDS: self.counts.read if processed is None else processed}
        if id:
            attrs[c.CHECKPOINT_ID] = id
        if position:
            attrs[c.CHECKPOINT_POSITION] = position
        self._emit(c.CHECKPOINT, SeverityNumber.INFO, attrs)

    def end(self, error: Optional[BaseException] = None) -> None:
        """Ends the run: batch end with the result and the counters (error None: success). A second
        call does nothing."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
            counts = Counts(**vars(self._counts))
        result = c.RESULT_SUCCESS
        if isinstance(error, (KeyboardInterrupt, asyncio.CancelledError)):
            result = c.RESULT_CANCELLATION
        elif isinstance(error, TimeoutError):
            result = c.RESULT_TIMEOUT
        elif error is not None:
            result = c.RESULT_FAILURE
        attrs: Dict[str, Any] = {
            c.BATCH_RESULT: result,
            c.RECORDS_READ: counts.read,
            c.RECORDS_WRITTEN: counts.written,
            c.RECORDS_SKIPPED: counts.skipped,
            c.RECORDS_ERRORED: counts.errored,
        }
        sev = SeverityNumber.INFO
        if error is not None:
            sev = SeverityNumber.ERROR
            attrs.update(_error_attrs(error))
        self._emit(c.BATCH_END, sev, attrs)
        if self._span is not None:
            self._span.set_attributes(attrs)
            if error is not None:
                self._span.set_status(Status(StatusCode.ERROR, str(error)))
            self._span.end()

    # Internals ---------------------------------------------------------------------------------

    def _count(self, what: str) -> None:
        with self._lock:
            setattr(self._counts, what, getattr(self._counts, what) + 1)

    @staticmethod
    def _dataset_attrs(ns_key: str, name_key: str, d: DatasetLike) -> Dict[str, Any]:
        ds = _dataset(d)
        attrs: Dict[str, Any] = {name_key: ds.name}
        if ds.namespace:
            attrs[ns_key] = ds.namespace
        return attrs

    def _emit_record(self, name: str, attrs: Dict[str, Any], record: Optional[Record],
                     options: Mapping[str, Any]) -> None:
        with_data = _apply_options(attrs, options)
        if record is not None:
            try:
                plain = _plain(record)
                attrs[c.RECORD_HASH] = record_hash(plain)
            except (TypeError, ValueError, UnicodeError) as exc:
                self._hash_failed(attrs.get(c.RECORD_ID), exc)
                return
            if with_data:
                attrs[c.RECORD_DATA] = plain
        sev = {c.RECORD_ERROR: SeverityNumber.ERROR, c.RECORD_SKIP: SeverityNumber.WARN}.get(name, SeverityNumber.INFO)
        self._emit(name, sev, attrs)

    def _hash_failed(self, record_id: Optional[str], exc: BaseException) -> None:
        # A record that cannot be hashed (NaN, an integer beyond 2^53, a non-JSON value) becomes a
        # record error event instead of being lost.
        self.error(record_id, "record cannot be hashed: %s" % exc)

    def _emit(self, name: str, severity: SeverityNumber, attrs: Mapping[str, Any]) -> None:
        a: Dict[str, Any] = {c.EVENT_ID: new_id()}
        a.update(self._common)
        a.update(attrs)
        now = time.time_ns()
        ctx = self._ctx if self._ctx is not None else otel_context.get_current()
        self._a._logger.emit(timestamp=now, observed_timestamp=now, context=ctx, severity_number=severity,
                             event_name=name, attributes=a)


_OPTIONS = {"lineage_id", "input_records", "partition", "key_fields", "with_data", "attributes"}


def _apply_options(attrs: Dict[str, Any], options: Mapping[str, Any]) -> bool:
    """Adds the optional fields of a record event; returns whether to send the record data.

    lineage_id: the lineage chain id, for records whose key changes on the way;
    input_records: the records a join or merge consumed; partition: scopes snapshot delete
    detection; key_fields: the fields that form the key; with_data=False sends only the hash;
    attributes: any further attributes."""
    unknown = set(options) - _OPTIONS
    if unknown:
        raise TypeError("unknown option(s): %s" % ", ".join(sorted(unknown)))
    if options.get("lineage_id"):
        attrs[c.LINEAGE_ID] = options["lineage_id"]
    if options.get("input_records"):
        attrs[c.INPUT_RECORD_IDS] = list(cast(Iterable[str], options["input_records"]))
    if options.get("partition"):
        attrs[c.PARTITION] = options["partition"]
    if options.get("key_fields"):
        attrs[c.RECORD_KEY_FIELDS] = list(cast(Iterable[str], options["key_fields"]))
    if options.get("attributes"):
        attrs.update(cast(Mapping[str, Any], options["attributes"]))
    return bool(options.get("with_data", True))


def _error_attrs(error: Union[BaseException, str]) -> Dict[str, Any]:
    if isinstance(error, BaseException):
        out = {c.ERROR_TYPE: _error_type(error), c.ERROR_MESSAGE: str(error) or _error_type(error)}
        if error.__traceback__ is not None:
            out[c.ERROR_STACKTRACE] = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        return out
    return {c.ERROR_MESSAGE: error}
