package io.batchaudit.example;

import io.opentelemetry.api.common.AttributeKey;
import io.opentelemetry.api.common.Attributes;
import io.opentelemetry.api.common.AttributesBuilder;
import io.opentelemetry.api.logs.Logger;
import io.opentelemetry.api.logs.Severity;
import java.security.SecureRandom;
import java.time.Instant;
import java.util.Map;
import java.util.UUID;
import java.util.function.Consumer;

/**
 * One batch run: batchaudit's canonical events (docs/conventions.md) with the batch id on every event
 * and the counters on the batch end event. Record content goes in batchaudit.record.data as its
 * canonical JSON text (the stable Java attribute API has no map type; the collector reads a JSON object
 * string there as the map), next to batchaudit.record.hash.
 */
public final class AuditRun {
  private static final SecureRandom RANDOM = new SecureRandom();

  private final Logger logger;
  private final Attributes common;
  private final String batchId;
  private long read, written, skipped, errored;
  private boolean ended;

  public AuditRun(Logger logger, String job, String batchId, String namespace, String actorId, String actorType) {
    this.logger = logger;
    this.batchId = batchId == null || batchId.isEmpty() ? newId() : batchId;
    AttributesBuilder b = Attributes.builder().put("batchaudit.batch.id", this.batchId).put("batchaudit.job.name", job);
    if (namespace != null) b.put("batchaudit.job.namespace", namespace);
    if (actorId != null) b.put("user.id", actorId);
    if (actorType != null) b.put("batchaudit.actor.type", actorType);
    common = b.build();
    emit("batchaudit.batch.start", Severity.INFO, a -> {});
  }

  /** A UUIDv7: time-ordered, and a valid OpenLineage run id. */
  public static String newId() {
    long ms = System.currentTimeMillis();
    long hi = (ms << 16) | 0x7000L | (RANDOM.nextInt() & 0x0fffL);
    long lo = (RANDOM.nextLong() & 0x3fffffffffffffffL) | 0x8000000000000000L;
    return new UUID(hi, lo).toString();
  }

  public String batchId() {
    return batchId;
  }

  public synchronized long[] counts() {
    return new long[] {read, written, skipped, errored};
  }

  public void read(String sourceNamespace, String source, String recordId, Map<String, ?> record) {
    synchronized (this) { read++; }
    emit("batchaudit.record.read", Severity.INFO, a -> {
      a.put("batchaudit.source.namespace", sourceNamespace).put("batchaudit.source.name", source).put("batchaudit.record.id", recordId);
      withRecord(a, record);
    });
  }

  public void transform(String recordId, String step, long sequence, Map<String, ?> input, Map<String, ?> output) {
    emit("batchaudit.record.transform", Severity.INFO, a -> {
      a.put("batchaudit.record.id", recordId).put("batchaudit.transform.name", step)
          .put("batchaudit.transform.sequence", sequence).put("batchaudit.lineage.input_hash", Jcs.recordHash(input));
      withRecord(a, output);
    });
  }

  public void write(String targetNamespace, String target, String recordId, Map<String, ?> record) {
    synchronized (this) { written++; }
    emit("batchaudit.record.write", Severity.INFO, a -> {
      a.put("batchaudit.target.namespace", targetNamespace).put("batchaudit.target.name", target).put("batchaudit.record.id", recordId);
      withRecord(a, record);
    });
  }

  public void skip(String recordId, String reason) {
    synchronized (this) { skipped++; }
    emit("batchaudit.record.skip", Severity.WARN,
        a -> a.put("batchaudit.record.id", recordId).put("batchaudit.record.skip_reason", reason));
  }

  public void error(String recordId, Exception e) {
    synchronized (this) { errored++; }
    emit("batchaudit.record.error", Severity.ERROR, a -> {
      if (recordId != null) a.put("batchaudit.record.id", recordId);
      a.put("error.type", e.getClass().getName()).put("exception.message", String.valueOf(e.getMessage()));
    });
  }

  public void validate(String rule, boolean passed, String column, String expected, double actual) {
    emit(passed ? "batchaudit.validation.pass" : "batchaudit.validation.fail", passed ? Severity.INFO : Severity.WARN,
        a -> a.put("batchaudit.validation.rule", rule).put("batchaudit.validation.column", column)
            .put("batchaudit.validation.expected", expected).put("batchaudit.validation.actual", actual));
  }

  public void checkpoint(String id, String position) {
    long processed;
    synchronized (this) { processed = read; }
    emit("batchaudit.checkpoint", Severity.INFO, a -> a.put("batchaudit.checkpoint.id", id)
        .put("batchaudit.checkpoint.position", position).put("batchaudit.checkpoint.records_processed", processed));
  }

  /** Ends the run: batch end with the result (error null: success) and the counters. */
  public void end(Exception error) {
    long[] c;
    synchronized (this) {
      if (ended) return;
      ended = true;
      c = new long[] {read, written, skipped, errored};
    }
    emit("batchaudit.batch.end", error == null ? Severity.INFO : Severity.ERROR, a -> {
      a.put("batchaudit.batch.result", error == null ? "success" : "failure")
          .put("batchaudit.batch.records.read", c[0]).put("batchaudit.batch.records.written", c[1])
          .put("batchaudit.batch.records.skipped", c[2]).put("batchaudit.batch.records.errored", c[3]);
      if (error != null) {
        a.put("error.type", error.getClass().getName()).put("exception.message", String.valueOf(error.getMessage()));
      }
    });
  }

  private static void withRecord(AttributesBuilder a, Map<String, ?> record) {
    if (record == null) return;
    String json = Jcs.canonical(record); // canonical JSON is valid JSON: hash and data from one text
    a.put("batchaudit.record.hash", Jcs.recordHash(record)).put(AttributeKey.stringKey("batchaudit.record.data"), json);
  }

  private void emit(String name, Severity severity, Consumer<AttributesBuilder> attrs) {
    AttributesBuilder a = common.toBuilder().put("log.record.uid", newId());
    attrs.accept(a);
    logger.logRecordBuilder().setEventName(name).setTimestamp(Instant.now()).setSeverity(severity)
        .setAllAttributes(a.build()).emit();
  }
}
