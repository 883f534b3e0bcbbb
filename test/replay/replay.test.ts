import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { temporal } from '@temporalio/proto';
import { Worker } from '@temporalio/worker';
import { workflowBundle } from '../support/helpers';

const HISTORIES = path.resolve(__dirname, '../../../test/replay/histories');

/**
 * Replays recorded histories of every workflow path against the current code: a change that is
 * not deterministic for runs already in flight fails here, before it reaches a worker.
 */
describe('replay of recorded workflow histories', function () {
  this.timeout(120_000);
  const files = fs.existsSync(HISTORIES) ? fs.readdirSync(HISTORIES).filter((f) => f.endsWith('.binpb')) : [];

  it('has recorded histories to replay', () => {
    assert.ok(files.length >= 4, `expected recorded histories in ${HISTORIES}; run npm run record-histories`);
  });

  for (const file of files) {
    it(`replays ${file} without nondeterminism`, async () => {
      const history = temporal.api.history.v1.History.decode(fs.readFileSync(path.join(HISTORIES, file)));
      await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history, file.replace(/\.binpb$/, ''));
    });
  }
});
