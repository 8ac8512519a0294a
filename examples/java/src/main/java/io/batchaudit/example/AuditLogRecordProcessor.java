package io.batchaudit.example;

import io.opentelemetry.context.Context;
import io.opentelemetry.sdk.common.CompletableResultCode;
import io.opentelemetry.sdk.logs.LogRecordProcessor;
import io.opentelemetry.sdk.logs.ReadWriteLogRecord;
import io.opentelemetry.sdk.logs.data.LogRecordData;
import io.opentelemetry.sdk.logs.export.LogRecordExporter;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * Batches audit events and never drops one. The SDK's BatchLogRecordProcessor drops records when its
 * queue is full; this one exports a full batch on the emitting thread, keeps a batch whose export failed
 * and sends it again with the next, and once maxQueue events are buffered blocks the job, retrying,
 * until the collector takes them: a slow collector slows the job down instead of losing its trail.
 * shutdown() retries for a while and then fails, with undelivered() telling how many events were lost.
 */
public final class AuditLogRecordProcessor implements LogRecordProcessor {
  private final LogRecordExporter exporter;
  private final int batchSize;
  private final int maxQueue;
  private final long retryMillis;
  private final long shutdownTimeoutMillis;
  private final List<LogRecordData> buf = new ArrayList<>();
  private final ScheduledExecutorService timer;
  private long undelivered;
  private boolean shut;

  public AuditLogRecordProcessor(LogRecordExporter exporter, int batchSize, long scheduleDelayMillis,
      int maxQueue, long retryMillis, long shutdownTimeoutMillis) {
    this.exporter = exporter;
    this.batchSize = batchSize;
    this.maxQueue = maxQueue;
    this.retryMillis = retryMillis;
    this.shutdownTimeoutMillis = shutdownTimeoutMillis;
    this.timer = Executors.newSingleThreadScheduledExecutor(r -> {
      Thread t = new Thread(r, "batchaudit-audit-export");
      t.setDaemon(true);
      return t;
    });
    timer.scheduleWithFixedDelay(this::flushQuietly, scheduleDelayMillis, scheduleDelayMillis, TimeUnit.MILLISECONDS);
  }

  public AuditLogRecordProcessor(LogRecordExporter exporter) {
    this(exporter, 512, 1000, 64 * 512, 1000, 10_000);
  }

  @Override
  public synchronized void onEmit(Context context, ReadWriteLogRecord logRecord) {
    if (shut) {
      undelivered++; // never silent: shutdown already reported, this one is counted too
      return;
    }
    buf.add(logRecord.toLogRecordData());
    if (buf.size() < batchSize) return;
    boolean ok = exportLocked();
    while (!ok && buf.size() >= maxQueue) {
      try {
        wait(retryMillis);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        return; // the events stay buffered; shutdown reports them if they never go out
      }
      ok = exportLocked();
    }
  }

  private boolean exportLocked() {
    while (!buf.isEmpty()) {
      List<LogRecordData> batch = new ArrayList<>(buf.subList(0, Math.min(batchSize, buf.size())));
      CompletableResultCode r = exporter.export(batch).join(30, TimeUnit.SECONDS);
      if (!r.isSuccess()) return false;
      buf.subList(0, batch.size()).clear();
    }
    return true;
  }

  private synchronized void flushQuietly() {
    exportLocked();
  }

  /** Events buffered and not yet delivered. */
  public synchronized int buffered() {
    return buf.size();
  }

  /** Events that could not be delivered by shutdown. */
  public synchronized long undelivered() {
    return undelivered;
  }

  @Override
  public synchronized CompletableResultCode forceFlush() {
    return exportLocked() ? exporter.flush() : CompletableResultCode.ofFailure();
  }

  @Override
  public CompletableResultCode shutdown() {
    timer.shutdownNow();
    synchronized (this) {
      if (shut) return CompletableResultCode.ofSuccess();
      long deadline = System.currentTimeMillis() + shutdownTimeoutMillis;
      boolean ok = exportLocked();
      while (!ok && System.currentTimeMillis() + retryMillis < deadline) {
        try {
          wait(retryMillis);
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          break;
        }
        ok = exportLocked();
      }
      shut = true;
      undelivered += buf.size();
      buf.clear();
    }
    exporter.shutdown().join(10, TimeUnit.SECONDS);
    return undelivered() == 0 ? CompletableResultCode.ofSuccess() : CompletableResultCode.ofFailure();
  }
}
