// RFC 8785 (JCS) canonical JSON and the batchaudit record hash: SHA-256 (lowercase hex) of the
// canonical JSON. test/jcs.test.js checks it against the shared golden vectors (canonical/testdata),
// so it equals the hash the collector and the Go, Python and Java code compute.
'use strict';
const { createHash } = require('node:crypto');

// JSON.stringify already writes numbers in the shortest ECMAScript form (1e+21, 1e-7, -0 as 0) and
// strings with RFC 8785's escaping; JCS adds the key order (UTF-16 code units, which is how
// JavaScript compares strings) and refuses what JSON cannot represent exactly.
const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function canonical(v) {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'boolean':
      return v ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(v)) throw new TypeError('NaN and Infinity are not JSON');
      return JSON.stringify(v);
    case 'string':
      if (loneSurrogate.test(v)) throw new TypeError('string has a lone surrogate (not valid UTF-8)');
      return JSON.stringify(v);
    case 'object':
      if (Array.isArray(v)) return '[' + v.map(canonical).join(',') + ']';
      if (![Object.prototype, null].includes(Object.getPrototypeOf(v))) {
        throw new TypeError(`${v.constructor.name} is not a plain object: convert it (e.g. a Date to an ISO string)`);
      }
      return '{' + Object.keys(v).sort().map((k) => canonical(k) + ':' + canonical(v[k])).join(',') + '}';
    default:
      throw new TypeError(`${typeof v} is not JSON`);
  }
}

function recordHash(record) {
  return createHash('sha256').update(canonical(record), 'utf8').digest('hex');
}

module.exports = { canonical, recordHash };
