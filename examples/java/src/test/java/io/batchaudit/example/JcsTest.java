package io.batchaudit.example;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;

/** The record hash equals Go's on the shared golden vectors (canonical/testdata). */
class JcsTest {
  private static final Path TESTDATA = Path.of("..", "..", "canonical", "testdata");

  @Test
  void goldenVectors() throws Exception {
    List<?> vectors = new ObjectMapper().readValue(TESTDATA.resolve("vectors.json").toFile(), List.class);
    List<String> golden = Arrays.asList(Files.readString(TESTDATA.resolve("vectors.sha256")).trim().split("\\s+"));
    assertEquals(10, vectors.size());
    assertEquals(golden, vectors.stream().map(Jcs::recordHash).toList());
  }

  @Test
  void shortestNumbers() {
    // Java 17's Double.toString gives 2.0000000000000004E23 for 2e23; ECMAScript gives 2e+23.
    double[] in = {2e23, 1e23, 1e21, 1e20, 100.0, 1e-7, 0.000001, 5e-324, 0.1 + 0.2, 1.7976931348623157e308, -0.0, 123456789012345.6};
    String[] want = {"2e+23", "1e+23", "1e+21", "100000000000000000000", "100", "1e-7", "0.000001", "5e-324",
        "0.30000000000000004", "1.7976931348623157e+308", "0", "123456789012345.6"};
    for (int i = 0; i < in.length; i++) {
      assertEquals(want[i], Jcs.canonical(in[i]), "value " + in[i]);
    }
  }

  @Test
  void keysAndStrings() {
    Map<String, Object> m = new TreeMap<>(Map.of("\u00f6", 1, "\ud83d\ude00", 2, "\ufb33", 3));
    assertEquals("{\"\u00f6\":1,\"\ud83d\ude00\":2,\"\ufb33\":3}", Jcs.canonical(m));
    assertEquals("\"\\u0001\\\"\\\\\u2028\"", Jcs.canonical("\u0001\"\\\u2028"));
  }

  @Test
  void refusesWhatIsNotJson() {
    for (Object bad : new Object[] {Double.NaN, Double.POSITIVE_INFINITY, (1L << 53) + 1, "\ud800", new Object(), Map.of(1, "a")}) {
      assertThrows(IllegalArgumentException.class, () -> Jcs.canonical(bad), String.valueOf(bad));
    }
  }
}
