"""A Python batch job instrumented with the real OpenTelemetry SDK (OTLP/HTTP logs).

Usage: otel_job.py ENDPOINT BATCH_ID    (ENDPOINT like http://127.0.0.1:4318)
Emits one run: start, 3 reads, 2 transforms, 2 writes, 1 skip, end, with the bare SDK (no
batchaudit package). Record hashes use the standard-library module python/src/batchaudit_jobaudit/canonical.py.
"""
import os
import sys
import time
import uuid

from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python", "src", "batchaudit_jobaudit"))
from canonical import record_hash  # noqa: E402

endpoint, batch_id = sys.argv[1], sys.argv[2]
provider = LoggerProvider(resource=Resource.create({
    "service.name": "orders-py", "batchaudit.job.name": "orders-py", "user.id": "svc-orders-py"}))
provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=endpoint + "/v1/logs")))
logger = provider.get_logger("orders-py")


def emit(name, severity=SeverityNumber.INFO, **attrs):
    attrs = {k.replace("__", "."): v for k, v in attrs.items()}
    attrs.update({"log.record.uid": str(uuid.uuid4()), "batchaudit.batch.id": batch_id})
    logger.emit(timestamp=time.time_ns(), event_name=name, severity_number=severity, attributes=attrs)


rows = [{"id": "P-1", "amount": 10.5}, {"id": "P-2", "amount": 0}, {"id": "P-3", "amount": 7}]
emit("batchaudit.batch.start", batchaudit__job__name="orders-py")
written = skipped = 0
for row in rows:
    emit("batchaudit.record.read", batchaudit__record__id=row["id"], batchaudit__source__name="py_orders",
         batchaudit__record__hash=record_hash(row))
    if row["amount"] == 0:
        emit("batchaudit.record.skip", SeverityNumber.WARN, batchaudit__record__id=row["id"],
             batchaudit__record__skip_reason="zero amount")
        skipped += 1
        continue
    out = dict(row, amount_cents=int(row["amount"] * 100))
    emit("batchaudit.record.transform", batchaudit__record__id=row["id"], batchaudit__transform__name="to_cents",
         batchaudit__lineage__input_hash=record_hash(row), batchaudit__record__hash=record_hash(out))
    emit("batchaudit.record.write", batchaudit__record__id=row["id"], batchaudit__target__name="py_orders_clean",
         batchaudit__record__hash=record_hash(out))
    written += 1
emit("batchaudit.batch.end", batchaudit__job__name="orders-py", batchaudit__batch__result="success",
     batchaudit__batch__records__read=len(rows), batchaudit__batch__records__written=written,
     batchaudit__batch__records__skipped=skipped, batchaudit__batch__records__errored=0)
provider.shutdown()
print("sent", batch_id)
