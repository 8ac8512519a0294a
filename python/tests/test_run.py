from __future__ import annotations

import datetime
import decimal
import http.server
import re
import threading
import uuid

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import batchaudit_jobaudit as ba
from batchaudit_jobaudit import conventions as c

SRC = ba.Dataset("orders.csv", "file://in")
DST = ba.Dataset("orders_clean", "postgres://db:5432")


def test_full_run(trail) -> None:
    row = {"order_id": "A-1", "amount": 12.5}
    clean = {"order_id": "A-1", "amount_eur": 11.5}
    with trail.auditor.run("orders-clean", actor_id="svc-etl", actor_type="service", namespace="finance",
                           parent_batch_id="dag-1", frameworks=["SOX"]) as run:
        run.read(SRC, "A-1", row)
        run.transform("A-1", ba.Step("to_eur", sequence=2, params={"rate": 0.92}), row, clean)
        run.write(DST, "A-1", clean, key_fields=["order_id"], partition="2026-11-01")
        run.skip("A-2", "cancelled")
        run.error("A-3", ValueError("bad amount"))
        run.delete(DST, "A-9")
        run.validate("amount_positive", True, column="amount", expected=">0", actual=12.5)
        run.validate("currency_known", False, actual="XXX")
        run.checkpoint("cp-1", "orders.csv:3")
    events = trail.events()
    names = [e.event_name for e in events]
    assert names == [c.BATCH_START, c.RECORD_READ, c.RECORD_TRANSFORM, c.RECORD_WRITE, c.RECORD_SKIP, c.RECORD_ERROR,
                     c.RECORD_DELETE, c.VALIDATION_PASS, c.VALIDATION_FAIL, c.CHECKPOINT, c.BATCH_END]
    attrs = [dict(e.attributes) for e in events]
    ids = {a[c.EVENT_ID] for a in attrs}
    assert len(ids) == len(events), "every event has its own id"
    batch = run.batch_id
    assert uuid.UUID(batch).version == 7, "the run id is a UUIDv7 (OpenLineage-friendly)"
    for a in attrs:
        assert a[c.BATCH_ID] == batch and a[c.JOB_NAME] == "orders-clean" and a[c.JOB_NAMESPACE] == "finance"
        assert a[c.USER_ID] == "svc-etl" and a[c.ACTOR_TYPE] == "service" and a[c.PARENT_BATCH_ID] == "dag-1"
        assert tuple(a[c.FRAMEWORKS]) == ("SOX",)
    read, tr, write, skip, err, dele, vpass, vfail, cp, end = attrs[1:]
    assert read[c.SOURCE_NAME] == "orders.csv" and read[c.SOURCE_NAMESPACE] == "file://in"
    assert read[c.RECORD_HASH] == ba.record_hash(row) and read[c.RECORD_DATA] == row
    assert tr[c.INPUT_HASH] == ba.record_hash(row) and tr[c.RECORD_HASH] == ba.record_hash(clean)
    assert tr[c.TRANSFORM_NAME] == "to_eur" and tr[c.TRANSFORM_SEQUENCE] == 2 and tr[c.TRANSFORM_PARAMS] == {"rate": 0.92}
    assert write[c.TARGET_NAME] == "orders_clean" and tuple(write[c.RECORD_KEY_FIELDS]) == ("order_id",)
    assert write[c.PARTITION] == "2026-11-01"
    assert skip[c.SKIP_REASON] == "cancelled"
    assert err[c.ERROR_TYPE] == "ValueError" and err[c.ERROR_MESSAGE] == "bad amount"
    assert dele[c.CHANGE_TYPE] == "delete" and c.RECORD_HASH not in dele
    assert vpass[c.VALIDATION_EXPECTED] == ">0" and vfail[c.VALIDATION_ACTUAL] == "XXX"
    assert cp[c.CHECKPOINT_ID] == "cp-1" and cp[c.CHECKPOINT_RECORDS] == 1
    assert end[c.BATCH_RESULT] == "success"
    assert (end[c.RECORDS_READ], end[c.RECORDS_WRITTEN], end[c.RECORDS_SKIPPED], end[c.RECORDS_ERRORED]) == (1, 1, 1, 1)
    sev = {e.event_name: e.severity_number for e in events}
    assert sev[c.RECORD_ERROR] == SeverityNumber.ERROR and sev[c.RECORD_SKIP] == SeverityNumber.WARN
    assert sev[c.VALIDATION_FAIL] == SeverityNumber.WARN and sev[c.BATCH_END] == SeverityNumber.INFO


def test_exception_ends_run_as_failure_with_counters(trail) -> None:
    with pytest.raises(RuntimeError):
        with trail.auditor.run("j") as run:
            run.read("src", "A-1", {"id": "A-1"})
            raise RuntimeError("disk full")
    end = trail.attrs()[-1]
    assert end[c.BATCH_RESULT] == "failure" and end[c.RECORDS_READ] == 1
    assert end[c.ERROR_TYPE] == "RuntimeError" and end[c.ERROR_MESSAGE] == "disk full"
    assert "disk full" in end[c.ERROR_STACKTRACE]
    assert trail.events()[-1].severity_number == SeverityNumber.ERROR


@pytest.mark.parametrize("exc,result", [(KeyboardInterrupt(), "cancellation"), (TimeoutError("slow"), "timeout")])
def test_results(trail, exc, result) -> None:
    run = trail.auditor.start_run("j")
    run.end(exc)
    run.end()  # a second end does nothing
    ends = [a for a in trail.attrs() if a.get(c.BATCH_RESULT)]
    assert [a[c.BATCH_RESULT] for a in ends] == [result]


def test_unhashable_record_becomes_error_event(trail) -> None:
    with trail.auditor.run("j") as run:
        run.write("t", "A-1", {"amount": float("nan")})
        run.write("t", "A-2", {"big": 2**60})
        run.write("t", "A-3", {"when": object()})
    attrs = trail.attrs()
    errors = [a for a in attrs if a.get(c.ERROR_MESSAGE, "").startswith("record cannot be hashed")]
    assert [a[c.RECORD_ID] for a in errors] == ["A-1", "A-2", "A-3"]
    assert attrs[-1][c.RECORDS_ERRORED] == 3


def test_values_made_json_before_hashing(trail) -> None:
    rec = {"d": datetime.date(2026, 11, 1), "t": datetime.datetime(2026, 11, 1, 2, 3, tzinfo=datetime.timezone.utc),
           "amount": decimal.Decimal("12.50"), "tags": ("a", "b")}
    with trail.auditor.run("j") as run:
        run.write("t", "A-1", rec)
        run.write("t", "A-2", rec, with_data=False, lineage_id="ord-A-2", input_records=["A-1", "C-7"])
    w1, w2 = trail.attrs()[1:3]
    plain = {"d": "2026-11-01", "t": "2026-11-01T02:03:00+00:00", "amount": "12.50", "tags": ["a", "b"]}
    assert w1[c.RECORD_HASH] == ba.record_hash(plain)
    assert dict(w1[c.RECORD_DATA], tags=list(w1[c.RECORD_DATA]["tags"])) == plain
    assert c.RECORD_DATA not in w2 and w2[c.RECORD_HASH] == w1[c.RECORD_HASH]
    assert w2[c.LINEAGE_ID] == "ord-A-2" and tuple(w2[c.INPUT_RECORD_IDS]) == ("A-1", "C-7")
    with pytest.raises(TypeError, match="unknown option"):
        trail.auditor.run("j").write("t", "A-3", {}, partiton="x")


class _Scalar:
    """Stands in for a numpy/pandas scalar: a value with ``item()``."""

    def __init__(self, v):
        self.v = v

    def item(self):
        return self.v


def test_uuids_and_numpy_style_scalars(trail) -> None:
    u = uuid.UUID("0190c2a4-7b1e-7cc0-9f3a-2b4c5d6e7f80")
    with trail.auditor.run("j") as run:
        run.write("t", "A-1", {"id": u, "qty": _Scalar(3), "price": _Scalar(2.5)})
    w = trail.attrs()[1]
    plain = {"id": str(u), "qty": 3, "price": 2.5}
    assert w[c.RECORD_HASH] == ba.record_hash(plain)
    assert dict(w[c.RECORD_DATA]) == plain


def test_setup_sends_headers_over_http() -> None:
    got = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (the stdlib's name)
            got["path"], got["auth"] = self.path, self.headers.get("Authorization")
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        auditor = ba.setup("svc", endpoint="http://127.0.0.1:%d" % srv.server_port, protocol="http/protobuf",
                           headers={"Authorization": "Bearer t0ken"})
        with auditor.run("j") as run:
            run.write("t", "A-1", {"a": 1})
        auditor.shutdown()
    finally:
        srv.shutdown()
    assert got == {"path": "/v1/logs", "auth": "Bearer t0ken"}


def test_setup_grpc_and_unknown_protocol() -> None:
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GRPCExporter

    auditor = ba.setup("svc", endpoint="http://127.0.0.1:1", protocol="grpc", headers={"authorization": "Bearer t0ken"})
    try:
        assert isinstance(auditor._processor._exporter, GRPCExporter)  # pylint: disable=protected-access
    finally:
        auditor.shutdown()
    with pytest.raises(ValueError, match="not one of"):
        ba.setup("svc", protocol="thrift")


def test_decorator_and_current_run(trail) -> None:
    @trail.auditor.job(actor_id="alice")
    def nightly(rows):
        run = ba.current_run()
        for r in rows:
            run.write("t", r["id"], r)
        return len(rows)

    assert nightly([{"id": "1"}, {"id": "2"}]) == 2
    with pytest.raises(LookupError):
        ba.current_run()
    attrs = trail.attrs()
    assert attrs[0][c.JOB_NAME] == "nightly" and attrs[0][c.USER_ID] == "alice"
    assert attrs[-1][c.RECORDS_WRITTEN] == 2 and attrs[-1][c.BATCH_RESULT] == "success"


def test_run_span_carries_ids(trail) -> None:
    spans = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(spans))
    auditor = ba.Auditor(trail.provider, tp)
    with auditor.run("j") as run:
        run.read("s", "A-1", {"id": "A-1"})
    (span,) = spans.get_finished_spans()
    assert span.name == "batch j" and span.attributes[c.RUN_EVENTS] == "logs"
    assert span.attributes[c.BATCH_ID] == run.batch_id and span.attributes[c.RECORDS_READ] == 1
    for e in trail.events():
        assert e.trace_id == span.context.trace_id and e.span_id == span.context.span_id


def test_new_id_is_time_ordered() -> None:
    ids = [ba.new_id() for _ in range(50)]
    assert all(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", i) for i in ids)
    assert [i[:13] for i in ids] == sorted(i[:13] for i in ids)
