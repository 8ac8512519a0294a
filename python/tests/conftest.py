from __future__ import annotations

from typing import Any, Dict, List

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.resources import Resource

import batchaudit_jobaudit as ba


class Trail:
    """An Auditor on the SDK's in-memory exporter, through the package's own processor."""

    def __init__(self) -> None:
        self.exporter = InMemoryLogRecordExporter()
        self.provider = LoggerProvider(resource=Resource.create({"service.name": "test"}))
        self.processor = ba.AuditLogRecordProcessor(self.exporter, max_batch_size=1000, schedule_delay=60)
        self.provider.add_log_record_processor(self.processor)
        self.auditor = ba.Auditor(self.provider)
        self.auditor._processor = self.processor

    def events(self) -> List[Any]:
        self.processor.force_flush()
        return [r.log_record for r in self.exporter.get_finished_logs()]

    def attrs(self) -> List[Dict[str, Any]]:
        return [dict(r.attributes) for r in self.events()]


@pytest.fixture
def trail() -> Trail:
    return Trail()
