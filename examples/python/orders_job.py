"""The orders job in Python, instrumented with batchaudit-jobaudit (pip install ./python).

Usage: orders_job.py ORDERS_CSV [BATCH_ID]
Sends to $OTEL_EXPORTER_OTLP_ENDPOINT (default http://localhost:4318). Reads the orders, skips
cancelled ones and non-positive amounts, records an error for unparsable amounts, converts the rest
to EUR and "writes" them to py_orders_clean. The Java and Node examples do the same, so their record
hashes are equal (testbed/langs_test.go checks the stored trails of all three).
"""
import csv
import math
import sys

import batchaudit_jobaudit as ba

EUR_RATES = {"EUR": 1, "USD": 0.92, "GBP": 1.17}
SRC = ba.Dataset("orders", "file://orders")
DST = ba.Dataset("py_orders_clean", "file://orders")


def main(path: str, batch_id: str = "") -> None:
    auditor = ba.setup(service_name="orders-py")
    with auditor.run("orders-py", batch_id=batch_id or None, actor_id="svc-orders-py", actor_type="service",
                     namespace="finance") as run:
        with open(path, newline="", encoding="utf-8") as f:
            lines = 1
            for row in csv.DictReader(f):
                lines += 1
                oid = row["order_id"]
                run.read(SRC, oid, row)
                if row["status"] == "cancelled":
                    run.skip(oid, "order cancelled")
                    continue
                try:
                    amount = float(row["amount"])
                except ValueError:
                    run.error(oid, ValueError("amount %r is not a number" % row["amount"]))
                    continue
                clean = {"order_id": oid, "customer": row["customer"], "country": row["country"].upper(),
                         "amount_eur": math.floor(amount * EUR_RATES[row["currency"]] * 100 + 0.5) / 100,
                         "currency": "EUR"}
                run.transform(oid, ba.Step("to_eur", 1, "DIRECT", "TRANSFORMATION"), row, clean)
                run.validate("amount_positive", amount > 0, "amount", ">0", amount)
                if amount <= 0:
                    run.skip(oid, "amount not positive")
                    continue
                run.write(DST, oid, clean)
        run.checkpoint("end", "%s:%d" % (path.rsplit("/", 1)[-1], lines))
    print("orders-py: batch %s: %s" % (run.batch_id, run.counts))
    auditor.shutdown()  # raises if the audit trail could not be delivered


if __name__ == "__main__":
    main(*sys.argv[1:])
