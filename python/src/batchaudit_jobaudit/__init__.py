"""batchaudit instrumentation for Python batch jobs.

Emits batchaudit's canonical audit events (docs/conventions.md) as OpenTelemetry log records::

    import batchaudit_jobaudit as ba

    auditor = ba.setup(service_name="orders-clean")      # OTLP to $OTEL_EXPORTER_OTLP_ENDPOINT
    with auditor.run("orders-clean", actor_id="svc-orders-etl", actor_type="service") as run:
        for row in rows:
            run.read(ba.Dataset("orders.csv", "file://in"), row["order_id"], row)
            run.write(ba.Dataset("orders_clean", "postgres://db:5432"), row["order_id"], clean(row))
    auditor.shutdown()    # raises UndeliveredEventsError if the trail could not be delivered
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Optional

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.resources import Resource

from .canonical import canonical, record_hash
from .ids import new_id
from .processor import AuditLogRecordProcessor, UndeliveredEventsError
from .run import Auditor, Counts, Dataset, Run, Step, current_run

__all__ = [
    "Auditor", "Run", "Dataset", "Step", "Counts", "current_run", "setup", "record_hash", "canonical",
    "new_id", "AuditLogRecordProcessor", "UndeliveredEventsError",
]


def setup(
    service_name: Optional[str] = None,
    *,
    endpoint: Optional[str] = None,
    protocol: Optional[str] = None,
    headers: Optional[Mapping[str, str]] = None,
    resource_attributes: Optional[Mapping[str, Any]] = None,
    max_batch_size: int = 512,
    schedule_delay: float = 1.0,
) -> Auditor:
    """An Auditor that sends over OTLP through an ``AuditLogRecordProcessor`` (never drops).

    endpoint: the collector's base URL (default ``$OTEL_EXPORTER_OTLP_ENDPOINT``, else
    http://localhost:4318 for http/protobuf and http://localhost:4317 for grpc); protocol:
    ``http/protobuf`` (default) or ``grpc`` (default ``$OTEL_EXPORTER_OTLP_PROTOCOL``); headers: e.g.
    an ``Authorization`` bearer token. ``Auditor.shutdown()`` flushes and raises
    ``UndeliveredEventsError`` if audit events could not be delivered.
    """
    protocol = protocol or os.environ.get("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL") or os.environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    exporter: Any
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GRPCExporter

        exporter = GRPCExporter(endpoint=endpoint, headers=dict(headers) if headers else None)
    elif protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HTTPExporter

        exporter = HTTPExporter(endpoint=endpoint.rstrip("/") + "/v1/logs" if endpoint else None,
                                headers=dict(headers) if headers else None)
    else:
        raise ValueError("protocol %r is not one of http/protobuf, grpc" % protocol)
    attrs = dict(resource_attributes or {})
    if service_name:
        attrs.setdefault("service.name", service_name)
    provider = LoggerProvider(resource=Resource.create(attrs))
    processor = AuditLogRecordProcessor(exporter, max_batch_size, schedule_delay)
    provider.add_log_record_processor(processor)
    auditor = Auditor(provider)
    auditor._processor = processor  # pylint: disable=protected-access
    return auditor
