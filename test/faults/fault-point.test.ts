import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { parseFaultSpec } from '../../infra/fault-injection';

const MODULE = path.resolve(__dirname, '../../infra/fault-injection.js');

/** Calls the fault point `times` times in a fresh node process with CLOSELOOP_FAULT=`spec`. */
function hitInChild(spec: string | undefined, times: number) {
  const script = `const { faultPoint } = require(${JSON.stringify(MODULE)});
for (let i = 1; i <= ${times}; i++) { faultPoint('after-gateway-charge'); process.stdout.write('survived ' + i + '\\n'); }`;
  const env = { ...process.env };
  delete env.CLOSELOOP_FAULT;
  if (spec !== undefined) env.CLOSELOOP_FAULT = spec;
  return spawnSync(process.execPath, ['-e', script], { env, encoding: 'utf8' });
}

describe('fault injection: faultPoint (test-only crash points)', () => {
  it('does nothing without CLOSELOOP_FAULT, or when it names another point', () => {
    for (const spec of [undefined, '', 'before-something-else', 'before-something-else:1']) {
      const r = hitInChild(spec, 3);
      assert.equal(r.signal, null, `spec ${String(spec)}`);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, 'survived 1\nsurvived 2\nsurvived 3\n');
    }
  });

  it('kills the process with SIGKILL at the first hit, or at the N-th with name:N', () => {
    const first = hitInChild('after-gateway-charge', 3);
    assert.equal(first.signal, 'SIGKILL');
    assert.equal(first.stdout, '');
    assert.match(first.stderr, /SIGKILL at after-gateway-charge \(hit 1\)/);

    const third = hitInChild('after-gateway-charge:3', 5);
    assert.equal(third.signal, 'SIGKILL');
    assert.equal(third.stdout, 'survived 1\nsurvived 2\n');
    assert.match(third.stderr, /SIGKILL at after-gateway-charge \(hit 3\)/);
  });

  it('refuses a malformed value instead of silently not crashing', () => {
    assert.deepEqual(parseFaultSpec('after-gateway-charge:7'), { name: 'after-gateway-charge', hit: 7 });
    for (const bad of ['after-gateway-charge:0', 'after-gateway-charge:x', 'After Gateway', ':3']) {
      assert.throws(() => parseFaultSpec(bad), /CLOSELOOP_FAULT must be/);
    }
  });
});
