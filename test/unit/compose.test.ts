/**
 * docker-compose.yml is valid Compose and describes the whole stack. Needs the Compose CLI
 * (`docker compose` v2 or `docker-compose` v1 >= 1.29) but no Docker engine: `config` only
 * parses, interpolates and validates. Skipped where neither CLI is installed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

// Compiled to dist/test/unit/, so the project root is three levels up.
const PROJECT_ROOT = path.resolve(__dirname, '../../..');
const COMPOSE_FILE = path.join(PROJECT_ROOT, 'docker-compose.yml');

const REQUIRED_SERVICES = ['postgres', 'temporal', 'temporal-ui', 'closeloop-api', 'closeloop-worker'];
const SEARCH_ATTRIBUTES = ['CustomerId', 'BrandId', 'CustomerStage', 'PlanCode', 'DunningState'];

function run(cmd: string, args: string[]) {
  return spawnSync(cmd, args, { cwd: PROJECT_ROOT, encoding: 'utf8', timeout: 30_000 });
}

/** The Compose CLI as [command, ...leading args], or undefined when none works here. */
function findCompose(): string[] | undefined {
  for (const candidate of [['docker', 'compose'], ['docker-compose']]) {
    const [cmd, ...rest] = candidate as [string, ...string[]];
    if (run(cmd, [...rest, 'version']).status === 0) return candidate;
  }
  return undefined;
}

describe('docker-compose.yml', function () {
  let compose: string[] | undefined;

  before(function () {
    this.timeout(60000);
    assert.ok(fs.existsSync(COMPOSE_FILE), `missing ${COMPOSE_FILE}`);
    compose = findCompose();
  });

  const NO_CLI = 'skipped: neither `docker compose` nor `docker-compose` works on this machine';

  /** this.skip() takes no reason: put it in the title, which the reporter prints. */
  function requireCompose(ctx: Mocha.Context): void {
    if (compose) return;
    if (ctx.test) ctx.test.title += ` (${NO_CLI})`;
    ctx.skip();
  }

  function composeRun(args: string[]) {
    const [cmd, ...rest] = compose as [string, ...string[]];
    return run(cmd, [...rest, '-f', 'docker-compose.yml', ...args]);
  }

  it('is valid for the Compose CLI (config -q)', function () {
    this.timeout(60000);
    requireCompose(this);
    const res = composeRun(['config', '-q']);
    assert.equal(res.error, undefined, String(res.error));
    assert.equal(res.status, 0, `${compose!.join(' ')} config -q failed:\n${res.stderr}${res.stdout}`);
  });

  it('defines postgres, temporal, temporal-ui, closeloop-api and closeloop-worker', function () {
    this.timeout(60000);
    requireCompose(this);
    const res = composeRun(['config', '--services']);
    assert.equal(res.status, 0, `${compose!.join(' ')} config --services failed:\n${res.stderr}`);
    const services = res.stdout.split(/\r?\n/).map((s) => s.trim()).filter(Boolean);
    for (const name of REQUIRED_SERVICES) assert.ok(services.includes(name), `service "${name}" missing; got ${services.join(', ')}`);
  });

  it('registers every custom search attribute as a Keyword', function () {
    const text = fs.readFileSync(COMPOSE_FILE, 'utf8');
    for (const name of SEARCH_ATTRIBUTES) {
      assert.match(text, new RegExp(`\\b${name}:Keyword\\b`), `search attribute ${name} is not registered as Keyword`);
    }
  });
});
