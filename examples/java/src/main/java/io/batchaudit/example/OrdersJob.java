package io.batchaudit.example;

import io.opentelemetry.api.common.Attributes;
import io.opentelemetry.exporter.otlp.http.logs.OtlpHttpLogRecordExporter;
import io.opentelemetry.sdk.logs.SdkLoggerProvider;
import io.opentelemetry.sdk.resources.Resource;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * The orders job in Java. Usage: OrdersJob ORDERS_CSV [BATCH_ID]; sends to $OTEL_EXPORTER_OTLP_ENDPOINT
 * (default http://localhost:4318) over OTLP/HTTP. Same logic as examples/python/orders_job.py, so the
 * record hashes of both are equal.
 */
public final class OrdersJob {
  private static final Map<String, Double> EUR_RATES = Map.of("EUR", 1.0, "USD", 0.92, "GBP", 1.17);

  public static void main(String[] args) throws Exception {
    String endpoint = System.getenv().getOrDefault("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318");
    AuditLogRecordProcessor processor = new AuditLogRecordProcessor(
        OtlpHttpLogRecordExporter.builder().setEndpoint(endpoint.replaceAll("/+$", "") + "/v1/logs").build());
    SdkLoggerProvider provider = SdkLoggerProvider.builder()
        .setResource(Resource.getDefault().merge(Resource.create(Attributes.builder().put("service.name", "orders-java").build())))
        .addLogRecordProcessor(processor).build();
    AuditRun run = new AuditRun(provider.get("orders-java"), "orders-java", args.length > 1 ? args[1] : null,
        "finance", "svc-orders-java", "service");
    Exception failure = null;
    try {
      process(run, Path.of(args[0]));
    } catch (Exception e) {
      failure = e;
    }
    run.end(failure);
    provider.shutdown().join(30, TimeUnit.SECONDS);
    if (processor.undelivered() > 0) {
      System.err.println("orders-java: " + processor.undelivered() + " audit events could not be delivered");
      System.exit(1);
    }
    long[] c = run.counts();
    System.out.printf("orders-java: batch %s: read %d written %d skipped %d errored %d%n", run.batchId(), c[0], c[1], c[2], c[3]);
    if (failure != null) throw failure;
  }

  static void process(AuditRun run, Path csv) throws Exception {
    List<String> lines = Files.readAllLines(csv);
    String[] cols = lines.get(0).split(",");
    for (String line : lines.subList(1, lines.size())) {
      if (line.isBlank()) continue;
      String[] vals = line.split(",", -1); // the example's CSV has no quoted fields
      Map<String, Object> row = new LinkedHashMap<>();
      for (int i = 0; i < cols.length; i++) row.put(cols[i], vals[i]);
      String id = vals[0];
      run.read("file://orders", "orders", id, row);
      if ("cancelled".equals(row.get("status"))) {
        run.skip(id, "order cancelled");
        continue;
      }
      double amount;
      try {
        amount = Double.parseDouble((String) row.get("amount"));
      } catch (NumberFormatException e) {
        run.error(id, new NumberFormatException("amount '" + row.get("amount") + "' is not a number"));
        continue;
      }
      Map<String, Object> clean = new LinkedHashMap<>();
      clean.put("order_id", id);
      clean.put("customer", row.get("customer"));
      clean.put("country", ((String) row.get("country")).toUpperCase(Locale.ROOT));
      clean.put("amount_eur", Math.floor(amount * EUR_RATES.get((String) row.get("currency")) * 100 + 0.5) / 100);
      clean.put("currency", "EUR");
      run.transform(id, "to_eur", 1, row, clean);
      run.validate("amount_positive", amount > 0, "amount", ">0", amount);
      if (amount <= 0) {
        run.skip(id, "amount not positive");
        continue;
      }
      run.write("file://orders", "java_orders_clean", id, clean);
    }
    run.checkpoint("end", csv.getFileName() + ":" + lines.size());
  }
}
