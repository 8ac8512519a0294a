// The orders job in Node, instrumented with audit.js over OTLP/HTTP (@opentelemetry/sdk-logs).
// Usage: node orders-job.js ORDERS_CSV [BATCH_ID]   (sends to $OTEL_EXPORTER_OTLP_ENDPOINT,
// default http://localhost:4318). Same logic as examples/python/orders_job.py, so the record hashes
// of both are equal.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { LoggerProvider } = require('@opentelemetry/sdk-logs');
const { OTLPLogExporter } = require('@opentelemetry/exporter-logs-otlp-http');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const { AuditLogRecordProcessor, startRun } = require('./audit');

const EUR_RATES = { EUR: 1, USD: 0.92, GBP: 1.17 };
const SRC = { name: 'orders', namespace: 'file://orders' };
const DST = { name: 'node_orders_clean', namespace: 'file://orders' };

async function main(csvPath, batchId) {
  const processor = new AuditLogRecordProcessor({ exporter: new OTLPLogExporter() });
  const provider = new LoggerProvider({ resource: resourceFromAttributes({ 'service.name': 'orders-node' }), processors: [processor] });
  const run = startRun(provider.getLogger('orders-node'), 'orders-node',
    { batchId, namespace: 'finance', actorId: 'svc-orders-node', actorType: 'service' });
  let failure;
  try {
    // The example's CSV has no quoted fields, so a split is enough.
    const [header, ...lines] = fs.readFileSync(csvPath, 'utf8').trim().split('\n');
    const cols = header.split(',');
    for (const line of lines) {
      const row = Object.fromEntries(line.split(',').map((v, i) => [cols[i], v]));
      const id = row.order_id;
      run.read(SRC, id, row);
      await processor.ready(); // backpressure instead of an unbounded queue
      if (row.status === 'cancelled') {
        run.skip(id, 'order cancelled');
        continue;
      }
      const amount = Number(row.amount);
      if (row.amount.trim() === '' || Number.isNaN(amount)) {
        run.error(id, new TypeError(`amount '${row.amount}' is not a number`));
        continue;
      }
      const clean = { order_id: id, customer: row.customer, country: row.country.toUpperCase(),
        amount_eur: Math.floor(amount * EUR_RATES[row.currency] * 100 + 0.5) / 100, currency: 'EUR' };
      run.transform(id, { name: 'to_eur', sequence: 1 }, row, clean);
      run.validate('amount_positive', amount > 0, 'amount', '>0', amount);
      if (amount <= 0) {
        run.skip(id, 'amount not positive');
        continue;
      }
      run.write(DST, id, clean);
    }
    run.checkpoint('end', `${path.basename(csvPath)}:${lines.length + 1}`);
  } catch (err) {
    failure = err;
  }
  run.end(failure);
  await provider.shutdown(); // flushes; the processor reports undelivered events
  if (processor.undelivered > 0) throw new Error(`${processor.undelivered} audit events could not be delivered`);
  console.log(`orders-node: batch ${run.batchId}: ${JSON.stringify(run.counts)}`);
  if (failure) throw failure;
}

main(process.argv[2], process.argv[3]).catch((err) => {
  console.error('orders-node:', err.message || err);
  process.exit(1);
});
