package io.batchaudit.example;

import java.math.BigDecimal;
import java.math.MathContext;
import java.math.RoundingMode;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;

/**
 * RFC 8785 (JCS) canonical JSON and the batchaudit record hash (SHA-256, lowercase hex, of the canonical
 * JSON). Values: null, Boolean, String, Integer/Long/Short/Byte, Double/Float, Map with String keys,
 * Collection or array. JcsTest checks it against the shared golden vectors (canonical/testdata), so it
 * equals the hash the collector and the Go, Python and Node code compute.
 */
public final class Jcs {
  private Jcs() {}

  /** Lowercase hex SHA-256 of the canonical JSON of record. */
  public static String recordHash(Object record) {
    try {
      byte[] digest = MessageDigest.getInstance("SHA-256").digest(canonical(record).getBytes(StandardCharsets.UTF_8));
      return HexFormat.of().formatHex(digest);
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  /** The canonical JSON text of v. */
  public static String canonical(Object v) {
    StringBuilder b = new StringBuilder();
    write(b, v);
    return b.toString();
  }

  private static void write(StringBuilder b, Object v) {
    if (v == null) {
      b.append("null");
    } else if (v instanceof Boolean bool) {
      b.append(bool ? "true" : "false");
    } else if (v instanceof String s) {
      string(b, s);
    } else if (v instanceof Integer || v instanceof Long || v instanceof Short || v instanceof Byte) {
      long n = ((Number) v).longValue();
      if (Math.abs(n) > (1L << 53)) {
        throw new IllegalArgumentException("integer beyond 2^53: send it as a string");
      }
      b.append(n);
    } else if (v instanceof Double || v instanceof Float) {
      b.append(number(((Number) v).doubleValue()));
    } else if (v instanceof Map<?, ?> m) {
      List<String> keys = new ArrayList<>();
      for (Object k : m.keySet()) {
        if (!(k instanceof String)) {
          throw new IllegalArgumentException("object keys must be strings, got " + k);
        }
        keys.add((String) k);
      }
      keys.sort(null); // String.compareTo compares UTF-16 code units, as RFC 8785 requires
      b.append('{');
      for (int i = 0; i < keys.size(); i++) {
        if (i > 0) b.append(',');
        string(b, keys.get(i));
        b.append(':');
        write(b, m.get(keys.get(i)));
      }
      b.append('}');
    } else if (v instanceof Collection<?> c) {
      b.append('[');
      int i = 0;
      for (Object e : c) {
        if (i++ > 0) b.append(',');
        write(b, e);
      }
      b.append(']');
    } else if (v instanceof Object[] a) {
      write(b, List.of(a));
    } else {
      throw new IllegalArgumentException(v.getClass().getName() + " is not JSON: convert it first");
    }
  }

  private static void string(StringBuilder b, String s) {
    b.append('"');
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (Character.isSurrogate(c)) {
        if (Character.isHighSurrogate(c) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
          b.append(c).append(s.charAt(++i));
          continue;
        }
        throw new IllegalArgumentException("string has a lone surrogate (not valid UTF-8)");
      }
      switch (c) {
        case '"' -> b.append("\\\"");
        case '\\' -> b.append("\\\\");
        case '\b' -> b.append("\\b");
        case '\t' -> b.append("\\t");
        case '\n' -> b.append("\\n");
        case '\f' -> b.append("\\f");
        case '\r' -> b.append("\\r");
        default -> {
          if (c < 0x20) {
            b.append(String.format("\\u%04x", (int) c));
          } else {
            b.append(c);
          }
        }
      }
    }
    b.append('"');
  }

  /**
   * A double in the shortest ECMAScript form (Number.prototype.toString). Java 17's Double.toString is
   * not always the shortest, so the digits come from the shortest decimal that reads back as d, the
   * closest one when several of that length do.
   */
  static String number(double d) {
    if (Double.isNaN(d) || Double.isInfinite(d)) {
      throw new IllegalArgumentException("NaN and Infinity are not JSON");
    }
    if (d == 0) return "0";
    String sign = d < 0 ? "-" : "";
    BigDecimal exact = new BigDecimal(Math.abs(d));
    BigDecimal best = null;
    for (int p = 1; p <= 17 && best == null; p++) {
      for (RoundingMode mode : new RoundingMode[] {RoundingMode.HALF_EVEN, RoundingMode.FLOOR, RoundingMode.CEILING}) {
        BigDecimal cand = exact.round(new MathContext(p, mode));
        if (cand.doubleValue() == Math.abs(d)
            && (best == null || cand.subtract(exact).abs().compareTo(best.subtract(exact).abs()) < 0)) {
          best = cand;
        }
      }
    }
    BigDecimal s = best.stripTrailingZeros();
    String digits = s.unscaledValue().toString();
    int k = digits.length();
    int n = k - s.scale(); // the value is 0.digits × 10^n
    StringBuilder b = new StringBuilder(sign);
    if (k <= n && n <= 21) {
      b.append(digits).append("0".repeat(n - k));
    } else if (0 < n && n <= 21) {
      b.append(digits, 0, n).append('.').append(digits, n, k);
    } else if (-6 < n && n <= 0) {
      b.append("0.").append("0".repeat(-n)).append(digits);
    } else {
      int e = n - 1;
      b.append(digits.charAt(0));
      if (k > 1) b.append('.').append(digits, 1, k);
      b.append('e').append(e >= 0 ? "+" : "-").append(Math.abs(e));
    }
    return b.toString();
  }
}
