package io.batchaudit.example;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.opentelemetry.api.common.AttributeKey;
import io.opentelemetry.sdk.common.CompletableResultCode;
import io.opentelemetry.sdk.logs.SdkLoggerProvider;
import io.opentelemetry.sdk.logs.data.LogRecordData;
import io.opentelemetry.sdk.logs.export.LogRecordExporter;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** A run's events, and a processor that never drops them (a fake exporter injects the failures). */
class AuditRunTest {
  static final class FlakyExporter implements LogRecordExporter {
    volatile boolean down;
    final List<LogRecordData> delivered = new ArrayList<>();

    @Override
    public synchronized CompletableResultCode export(Collection<LogRecordData> logs) {
      if (down) return CompletableResultCode.ofFailure();
      delivered.addAll(logs);
      return CompletableResultCode.ofSuccess();
    }

    @Override
    public CompletableResultCode flush() {
      return CompletableResultCode.ofSuccess();
    }

    @Override
    public CompletableResultCode shutdown() {
      return CompletableResultCode.ofSuccess();
    }
  }

  static String attr(LogRecordData r, String key) {
    Object v = r.getAttributes().get(AttributeKey.stringKey(key));
    return v == null ? null : v.toString();
  }

  @Test
  void runEventsAndResend() throws Exception {
    FlakyExporter exp = new FlakyExporter();
    AuditLogRecordProcessor p = new AuditLogRecordProcessor(exp, 2, 60_000, 1000, 5, 200);
    SdkLoggerProvider lp = SdkLoggerProvider.builder().addLogRecordProcessor(p).build();
    exp.down = true;
    AuditRun run = new AuditRun(lp.get("t"), "j", null, null, "alice", "human");
    Map<String, Object> row = Map.of("id", "A-1", "amount", 12.5);
    run.read("file://in", "orders", "A-1", row);
    run.transform("A-1", "to_eur", 1, row, Map.of("id", "A-1", "amount_eur", 11.5));
    run.write("file://out", "clean", "A-1", Map.of("id", "A-1", "amount_eur", 11.5));
    run.skip("A-2", "cancelled");
    assertTrue(exp.delivered.isEmpty());
    assertEquals(5, p.buffered(), "failed batches are kept");
    exp.down = false;
    run.end(null);
    assertTrue(lp.shutdown().join(5, TimeUnit.SECONDS).isSuccess());
    assertEquals(0, p.undelivered());
    List<String> names = exp.delivered.stream().map(LogRecordData::getEventName).toList();
    assertEquals(List.of("batchaudit.batch.start", "batchaudit.record.read", "batchaudit.record.transform",
        "batchaudit.record.write", "batchaudit.record.skip", "batchaudit.batch.end"), names);
    for (LogRecordData r : exp.delivered) {
      assertEquals(run.batchId(), attr(r, "batchaudit.batch.id"));
      assertEquals("alice", attr(r, "user.id"));
    }
    LogRecordData read = exp.delivered.get(1);
    assertEquals(Jcs.recordHash(row), attr(read, "batchaudit.record.hash"));
    assertEquals("{\"amount\":12.5,\"id\":\"A-1\"}", attr(read, "batchaudit.record.data"));
    assertEquals(Jcs.recordHash(row), attr(exp.delivered.get(2), "batchaudit.lineage.input_hash"));
    LogRecordData end = exp.delivered.get(5);
    assertEquals("success", attr(end, "batchaudit.batch.result"));
    assertEquals(1L, end.getAttributes().get(AttributeKey.longKey("batchaudit.batch.records.written")));
    assertTrue(run.batchId().matches("[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"));
  }

  @Test
  void fullQueueBlocksAndShutdownReportsUndelivered() throws Exception {
    FlakyExporter exp = new FlakyExporter();
    exp.down = true;
    AuditLogRecordProcessor p = new AuditLogRecordProcessor(exp, 1, 60_000, 2, 5, 50);
    SdkLoggerProvider lp = SdkLoggerProvider.builder().addLogRecordProcessor(p).build();
    AuditRun run = new AuditRun(lp.get("t"), "j", "b1", null, null, null);
    Thread job = new Thread(() -> run.skip("A-1", "x")); // the queue is full: this emit blocks
    job.start();
    job.join(200);
    assertTrue(job.isAlive(), "the job waits instead of dropping");
    exp.down = false;
    job.join(2000);
    assertFalse(job.isAlive());
    assertEquals(2, exp.delivered.size());
    exp.down = true;
    run.end(new IllegalStateException("boom"));
    assertFalse(lp.shutdown().join(5, TimeUnit.SECONDS).isSuccess());
    assertEquals(1, p.undelivered());
  }
}
