// A small batchaudit run helper for Node jobs on the OpenTelemetry JS logs SDK: the canonical
// event names and attributes of docs/conventions.md, the batch id on every event, counters on the
// batch end event, and a log record processor that never drops an audit event.
'use strict';
const { randomBytes } = require('node:crypto');
const { SeverityNumber } = require('@opentelemetry/api-logs');
const { ExportResultCode } = require('@opentelemetry/core');
const { recordHash } = require('./jcs');

// newId returns a UUIDv7 (time-ordered; a valid OpenLineage run id).
function newId() {
  const b = randomBytes(16);
  b.writeUIntBE(Date.now(), 0, 6);
  b[6] = 0x70 | (b[6] & 0x0f);
  b[8] = 0x80 | (b[8] & 0x3f);
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// AuditLogRecordProcessor batches audit events and never drops one (the SDK's
// BatchLogRecordProcessor drops records when its queue is full). Failed batches stay buffered and are
// sent again; `await processor.ready()` in the job's loop waits while more than highWaterMark events
// are buffered (backpressure: a slow or absent collector slows the job instead of losing events);
// shutdown() retries for shutdownTimeoutMillis and then rejects, naming how many events were not
// delivered, so the job can fail its run.
class AuditLogRecordProcessor {
  constructor({ exporter, maxBatchSize = 512, scheduleDelayMillis = 1000, highWaterMark = 64 * 512,
    retryMillis = 1000, shutdownTimeoutMillis = 10000 }) {
    Object.assign(this, { _exporter: exporter, _size: maxBatchSize, _hwm: highWaterMark, _retry: retryMillis,
      _shutdownTimeout: shutdownTimeoutMillis });
    this._buf = [];
    this._tail = Promise.resolve();
    this._shut = false;
    this.undelivered = 0;
    this.lastError = undefined;
    this._timer = setInterval(() => this._serial(() => this._flush(0)), scheduleDelayMillis);
    this._timer.unref();
  }

  onEmit(record) {
    if (this._shut) {
      this.undelivered++; // never silent: counted and reported by shutdown()
      return;
    }
    this._buf.push(record);
    if (this._buf.length % this._size === 0) this._serial(() => this._flush(this._size - 1));
  }

  // Exports run one at a time, in order.
  _serial(fn) {
    const p = this._tail.then(fn);
    this._tail = p.catch(() => {});
    return p;
  }

  // _flush exports front batches until at most `keep` events are buffered; false if one failed.
  async _flush(keep) {
    while (this._buf.length > keep) {
      const batch = this._buf.slice(0, this._size);
      const res = await new Promise((resolve) => {
        try {
          this._exporter.export(batch, resolve);
        } catch (error) {
          resolve({ code: ExportResultCode.FAILED, error });
        }
      });
      if (res.code !== ExportResultCode.SUCCESS) {
        this.lastError = res.error || new Error('export failed');
        return false;
      }
      this._buf.splice(0, batch.length);
      this.lastError = undefined;
    }
    return true;
  }

  // ready resolves once fewer than highWaterMark events are buffered.
  async ready() {
    while (this._buf.length >= this._hwm) {
      if (!(await this._serial(() => this._flush(this._hwm - 1)))) await sleep(this._retry);
    }
  }

  async forceFlush() {
    if (!(await this._serial(() => this._flush(0)))) throw this.lastError;
  }

  async shutdown() {
    clearInterval(this._timer);
    const deadline = Date.now() + this._shutdownTimeout;
    while (!(await this._serial(() => this._flush(0))) && Date.now() + this._retry < deadline) {
      await sleep(this._retry);
    }
    this._shut = true;
    this.undelivered += this._buf.length;
    this._buf.length = 0;
    await this._exporter.shutdown();
    if (this.undelivered > 0) {
      throw new Error(`batchaudit: ${this.undelivered} audit event(s) could not be delivered: ${this.lastError}`);
    }
  }
}

function datasetAttrs(prefix, d) {
  const ds = typeof d === 'string' ? { name: d } : d;
  return { [`batchaudit.${prefix}.name`]: ds.name, ...(ds.namespace ? { [`batchaudit.${prefix}.namespace`]: ds.namespace } : {}) };
}

// startRun emits batchaudit.batch.start and returns the run; call run.end(err) when it is done.
function startRun(logger, job, { batchId, namespace, actorId, actorType } = {}) {
  const common = { 'batchaudit.batch.id': batchId || newId(), 'batchaudit.job.name': job };
  if (namespace) common['batchaudit.job.namespace'] = namespace;
  if (actorId) common['user.id'] = actorId;
  if (actorType) common['batchaudit.actor.type'] = actorType;
  const counts = { read: 0, written: 0, skipped: 0, errored: 0 };
  let ended = false;
  const emit = (eventName, severityNumber, attrs) => logger.emit({ eventName, severityNumber, timestamp: Date.now(),
    attributes: { 'log.record.uid': newId(), ...common, ...attrs } });
  const withRecord = (attrs, record) => (record === undefined ? attrs
    : { ...attrs, 'batchaudit.record.hash': recordHash(record), 'batchaudit.record.data': record });
  const run = {
    batchId: common['batchaudit.batch.id'],
    counts,
    read(source, id, record) {
      counts.read++;
      emit('batchaudit.record.read', SeverityNumber.INFO, withRecord({ ...datasetAttrs('source', source), 'batchaudit.record.id': id }, record));
    },
    transform(id, step, input, output) {
      emit('batchaudit.record.transform', SeverityNumber.INFO, withRecord({ 'batchaudit.record.id': id,
        'batchaudit.transform.name': step.name, ...(step.sequence ? { 'batchaudit.transform.sequence': step.sequence } : {}),
        'batchaudit.lineage.input_hash': recordHash(input) }, output));
    },
    write(target, id, record) {
      counts.written++;
      emit('batchaudit.record.write', SeverityNumber.INFO, withRecord({ ...datasetAttrs('target', target), 'batchaudit.record.id': id }, record));
    },
    skip(id, reason) {
      counts.skipped++;
      emit('batchaudit.record.skip', SeverityNumber.WARN, { 'batchaudit.record.id': id, 'batchaudit.record.skip_reason': reason });
    },
    error(id, err) {
      counts.errored++;
      emit('batchaudit.record.error', SeverityNumber.ERROR, { ...(id ? { 'batchaudit.record.id': id } : {}),
        'error.type': err.name || 'Error', 'exception.message': String(err.message || err) });
    },
    validate(rule, passed, column, expected, actual) {
      emit(passed ? 'batchaudit.validation.pass' : 'batchaudit.validation.fail', passed ? SeverityNumber.INFO : SeverityNumber.WARN,
        { 'batchaudit.validation.rule': rule, 'batchaudit.validation.column': column,
          'batchaudit.validation.expected': expected, 'batchaudit.validation.actual': actual });
    },
    checkpoint(id, position) {
      emit('batchaudit.checkpoint', SeverityNumber.INFO, { 'batchaudit.checkpoint.id': id,
        'batchaudit.checkpoint.position': position, 'batchaudit.checkpoint.records_processed': counts.read });
    },
    end(err) {
      if (ended) return;
      ended = true;
      emit('batchaudit.batch.end', err ? SeverityNumber.ERROR : SeverityNumber.INFO, {
        'batchaudit.batch.result': err ? 'failure' : 'success',
        'batchaudit.batch.records.read': counts.read, 'batchaudit.batch.records.written': counts.written,
        'batchaudit.batch.records.skipped': counts.skipped, 'batchaudit.batch.records.errored': counts.errored,
        ...(err ? { 'error.type': err.name || 'Error', 'exception.message': String(err.message || err) } : {}),
      });
    },
  };
  emit('batchaudit.batch.start', SeverityNumber.INFO, {});
  return run;
}

module.exports = { AuditLogRecordProcessor, startRun, newId };
