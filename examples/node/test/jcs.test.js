'use strict';
// The record hash equals Go's on the shared golden vectors (canonical/testdata).
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
const { canonical, recordHash } = require('../jcs');

const testdata = path.join(__dirname, '..', '..', '..', 'canonical', 'testdata');

test('golden vectors', () => {
  const vectors = JSON.parse(fs.readFileSync(path.join(testdata, 'vectors.json'), 'utf8'));
  const golden = fs.readFileSync(path.join(testdata, 'vectors.sha256'), 'utf8').trim().split(/\s+/);
  assert.strictEqual(vectors.length, 10);
  assert.deepStrictEqual(vectors.map(recordHash), golden);
});

test('number and key forms', () => {
  assert.strictEqual(canonical([100.0, 1e-7, 1e21, -0, 0.000001]), '[100,1e-7,1e+21,0,0.000001]');
  assert.strictEqual(canonical({ '\u00f6': 1, '\u{1F600}': 2, '\ufb33': 3 }), '{"\u00f6":1,"\u{1F600}":2,"\ufb33":3}');
  assert.strictEqual(canonical('\u0001"\\'), '"\\u0001\\"\\\\"');
});

test('refuses what is not JSON', () => {
  for (const bad of [NaN, Infinity, 1n, new Date(0), '\ud800', undefined]) {
    assert.throws(() => canonical(bad), TypeError, String(bad));
  }
});
