'use strict';
// The processor never drops audit events (a fake exporter injects the failures), and a run's
// events carry the batch id and the counters.
const test = require('node:test');
const assert = require('node:assert');
const { ExportResultCode } = require('@opentelemetry/core');
const { LoggerProvider } = require('@opentelemetry/sdk-logs');
const { AuditLogRecordProcessor, startRun } = require('../audit');
const { recordHash } = require('../jcs');

class FlakyExporter {
  constructor() { this.down = false; this.delivered = []; }
  export(batch, done) {
    setImmediate(() => {
      if (this.down) return done({ code: ExportResultCode.FAILED, error: new Error('collector unreachable') });
      this.delivered.push(...batch);
      return done({ code: ExportResultCode.SUCCESS });
    });
  }
  async shutdown() {}
  async forceFlush() {}
}

function setup(opts) {
  const exporter = new FlakyExporter();
  const processor = new AuditLogRecordProcessor({ exporter, retryMillis: 5, shutdownTimeoutMillis: 50, ...opts });
  const provider = new LoggerProvider({ processors: [processor] });
  return { exporter, processor, provider, logger: provider.getLogger('t') };
}

test('a run: names, batch id, hashes, counters', async () => {
  const { exporter, provider, logger } = setup({});
  const run = startRun(logger, 'j', { actorId: 'alice' });
  const row = { id: 'A-1', amount: 12.5 };
  run.read('src', 'A-1', row);
  run.transform('A-1', { name: 'to_eur', sequence: 1 }, row, { id: 'A-1', amount_eur: 11.5 });
  run.write({ name: 'dst', namespace: 'file://x' }, 'A-1', { id: 'A-1', amount_eur: 11.5 });
  run.skip('A-2', 'cancelled');
  run.error('A-3', new TypeError('bad'));
  run.end();
  await provider.shutdown();
  const names = exporter.delivered.map((r) => r.eventName);
  assert.deepStrictEqual(names, ['batchaudit.batch.start', 'batchaudit.record.read', 'batchaudit.record.transform',
    'batchaudit.record.write', 'batchaudit.record.skip', 'batchaudit.record.error', 'batchaudit.batch.end']);
  for (const r of exporter.delivered) {
    assert.strictEqual(r.attributes['batchaudit.batch.id'], run.batchId);
    assert.strictEqual(r.attributes['user.id'], 'alice');
  }
  assert.match(run.batchId, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  const [, read, tr, write, , err, end] = exporter.delivered.map((r) => r.attributes);
  assert.strictEqual(read['batchaudit.record.hash'], recordHash(row));
  assert.deepStrictEqual(read['batchaudit.record.data'], row);
  assert.strictEqual(tr['batchaudit.lineage.input_hash'], recordHash(row));
  assert.strictEqual(write['batchaudit.target.namespace'], 'file://x');
  assert.strictEqual(err['error.type'], 'TypeError');
  assert.deepStrictEqual([end['batchaudit.batch.result'], end['batchaudit.batch.records.read'], end['batchaudit.batch.records.written'],
    end['batchaudit.batch.records.skipped'], end['batchaudit.batch.records.errored']], ['success', 1, 1, 1, 1]);
});

test('failed batches are kept, resent in order, and ready() waits', async () => {
  const { exporter, processor, provider, logger } = setup({ maxBatchSize: 2, highWaterMark: 4 });
  exporter.down = true;
  const run = startRun(logger, 'j');
  for (let i = 0; i < 5; i++) run.read('s', String(i));
  let ready = false;
  const waiting = processor.ready().then(() => { ready = true; });
  await new Promise((r) => setTimeout(r, 30));
  assert.strictEqual(ready, false, 'the job waits instead of dropping');
  exporter.down = false;
  await waiting;
  run.end();
  await provider.shutdown();
  const ids = exporter.delivered.map((r) => r.attributes['batchaudit.record.id']).filter(Boolean);
  assert.deepStrictEqual(ids, ['0', '1', '2', '3', '4']);
  assert.strictEqual(exporter.delivered.length, 7);
});

test('shutdown reports undelivered events', async () => {
  const { exporter, processor, logger } = setup({});
  exporter.down = true;
  startRun(logger, 'j').end();
  await assert.rejects(processor.shutdown(), /2 audit event\(s\) could not be delivered/);
});
