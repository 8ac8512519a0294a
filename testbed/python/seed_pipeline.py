"""Runs the seed 000 batch pipeline, with its own modules, against the collector's plain JSON endpoint.

The test extracts the seed's modules (audit_models, audit_logger, change_detector, lineage_tracker,
batch_processor) from ../shared/seeds/000_*.txt into MODULES_DIR; nothing of them is changed. What the seed
leaves to its user is written here: the storage backend its AuditLogger flushes to (it POSTs the
AuditEvent.to_dict() arrays the logger hands over) and the job's reader, transformer and writer.

Usage: seed_pipeline.py MODULES_DIR URL USER:PASSWORD OUT.json
Writes OUT.json: the batch id, the counters the pipeline itself reports, and the ids of the events the
collector accepted.
"""
import base64
import json
import sys
import threading
import time
import urllib.error
import urllib.request

modules, url, credentials, out_path = sys.argv[1:5]
sys.path.insert(0, modules)

from audit_logger import AuditLogger  # noqa: E402  (the seed's modules)
from batch_processor import AuditedBatchProcessor  # noqa: E402
from lineage_tracker import LineageStorage, LineageTracker  # noqa: E402


class HTTPAuditStorage:
    """The AuditLogger's storage backend: one POST per flush, from whichever thread flushes."""

    def __init__(self):
        self.auth = "Basic " + base64.b64encode(credentials.encode()).decode()
        self.lock = threading.Lock()
        self.accepted, self.errors, self.runs = [], [], []

    def write_events(self, events):
        body = json.dumps([e.to_dict() for e in events], default=str).encode()
        req = urllib.request.Request(url + "/v1/audit/events", data=body, method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": self.auth})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                answer = json.load(resp)
        except urllib.error.HTTPError as e:
            with self.lock:
                self.errors.append(f"HTTP {e.code}: {e.read().decode()}")
            raise  # the logger keeps the events and retries them
        with self.lock:
            self.accepted.extend(answer["event_ids"])

    def write_batch_run(self, batch_run):
        self.runs.append(batch_run)


class MemoryLineageStorage(LineageStorage):
    def __init__(self):
        self.lineages = []

    def store_lineage(self, lineage):
        self.lineages.append(lineage)


ORDERS = [{"id": f"O-{i}", "customer": f"customer {i % 7}", "amount": 20.0 + 13.5 * i} for i in range(1, 31)]


def read_orders():
    for order in ORDERS:
        time.sleep(0.003)  # spread the run over several flushes of the logger's two threads
        yield order


def transform(order):
    if order["amount"] < 50:
        return None  # filtered: a skip
    if order["id"] == "O-13":
        raise ValueError("amount cannot be converted")  # a record error
    return {"id": order["id"], "customer_name": order["customer"].upper(),
            "total_amount": round(order["amount"] * 0.92, 2), "status": "processed"}


written = []
storage = HTTPAuditStorage()
logger = AuditLogger(storage_backend=storage, buffer_size=100, flush_interval_seconds=0.01)
logger.start()
processor = AuditedBatchProcessor(audit_logger=logger, lineage_tracker=LineageTracker(MemoryLineageStorage()))
result = processor.process_batch(
    job_name="daily_order_processing", actor="scheduler@example.com",
    source_name="orders_db.orders", target_name="warehouse.processed_orders",
    reader=read_orders, transformer=transform, writer=lambda rec, change: written.append(rec),
    checkpoint_interval=10, config={"min_amount": 50, "environment": "production"})
logger.stop()

run = storage.runs[0]
json.dump({"batch_id": result.batch_id, "status": run.status,
           "read": run.records_read, "written": run.records_written,
           "skipped": run.records_skipped, "errored": run.records_errored,
           "inserted": result.records_inserted, "accepted": storage.accepted, "errors": storage.errors},
          open(out_path, "w"), indent=1)
if storage.errors:
    sys.exit("the collector rejected events: " + "; ".join(storage.errors))
print("sent", len(storage.accepted), "events of batch", result.batch_id)
