/**
 * infra/config.ts: defaults that work on a fresh machine, and bad values that fail fast naming
 * the variable. Every test passes its own env object; process.env is never read or changed.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { Config, ConfigError, loadConfig, pathsFor, requireExternal } from '../../infra/config';
import { PROJECT_ROOT } from '../../infra/paths';

/** Asserts a ConfigError whose message starts with the variable's name. */
function configError(variable: string, extra?: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    assert.equal(err.name, 'ConfigError');
    assert.ok(err.message.startsWith(`${variable} `), `message should start with ${variable}: ${err.message}`);
    if (extra) assert.match(err.message, extra);
    return true;
  };
}

describe('infra/config', () => {
  describe('loadConfig defaults (empty environment)', () => {
    const config = loadConfig({});

    it('serves the API on port 3000 on 127.0.0.1', () => {
      assert.equal(config.apiPort, 3000);
      assert.equal(config.apiHost, '127.0.0.1');
    });

    it('uses the "default" Temporal namespace and the "closeloop" task queue', () => {
      assert.equal(config.temporalNamespace, 'default');
      assert.equal(config.taskQueue, 'closeloop');
    });

    it('runs the dev server on 7233 with its UI on 8233', () => {
      assert.equal(config.temporalDevPort, 7233);
      assert.equal(config.temporalUiPort, 8233);
    });

    it('leaves PostgreSQL and Temporal unset, meaning "start them embedded"', () => {
      assert.equal(config.databaseUrl, undefined);
      assert.equal(config.temporalAddress, undefined);
      assert.equal(config.embeddedPostgresPort, undefined);
    });

    it('logs at info level', () => {
      assert.equal(config.logLevel, 'info');
    });

    it('keeps state in .closeloop under the project root', () => {
      assert.equal(config.stateDir, path.join(PROJECT_ROOT, '.closeloop'));
      assert.ok(path.isAbsolute(config.stateDir));
    });

    it('treats empty and blank values like unset ones', () => {
      const blank = loadConfig({
        PORT: '',
        TEMPORAL_DEV_PORT: '   ',
        TEMPORAL_UI_PORT: '',
        TEMPORAL_NAMESPACE: '  ',
        TEMPORAL_TASK_QUEUE: '',
        DATABASE_URL: ' ',
        TEMPORAL_ADDRESS: '',
        HOST: '',
        LOG_LEVEL: '  ',
      });
      assert.deepStrictEqual(blank, config);
    });
  });

  describe('loadConfig overrides', () => {
    it('reads every setting from its variable', () => {
      const config = loadConfig({
        CLOSELOOP_STATE_DIR: '/var/lib/closeloop',
        DATABASE_URL: 'postgresql://u:p@db:5432/closeloop',
        EMBEDDED_PG_PORT: '5433',
        TEMPORAL_ADDRESS: 'temporal:7233',
        TEMPORAL_NAMESPACE: 'billing',
        TEMPORAL_DEV_PORT: '17233',
        TEMPORAL_UI_PORT: '18233',
        TEMPORAL_TASK_QUEUE: 'closeloop-eu',
        PORT: '8080',
        HOST: '0.0.0.0',
        LOG_LEVEL: 'debug',
        SMTP_HOST: 'mail.internal',
        SMTP_PORT: '587',
        MAIL_FROM: 'Billing <billing@example.com>',
        PUBLIC_URL: 'https://billing.example.com/',
        LINK_SIGNING_SECRET: 'a-link-signing-secret-of-32-chars!',
      });
      assert.deepStrictEqual(config, {
        stateDir: '/var/lib/closeloop',
        databaseUrl: 'postgresql://u:p@db:5432/closeloop',
        embeddedPostgresPort: 5433,
        temporalAddress: 'temporal:7233',
        temporalNamespace: 'billing',
        temporalDevPort: 17233,
        temporalUiPort: 18233,
        taskQueue: 'closeloop-eu',
        apiPort: 8080,
        apiHost: '0.0.0.0',
        logLevel: 'debug',
        smtpHost: 'mail.internal',
        smtpPort: 587,
        mailFrom: 'Billing <billing@example.com>',
        publicUrl: 'https://billing.example.com',
        linkSecret: 'a-link-signing-secret-of-32-chars!',
      });
    });

    it('refuses a link signing secret shorter than 32 characters, naming the variable', () => {
      assert.throws(() => loadConfig({ LINK_SIGNING_SECRET: 'short' }), (e: Error) => e.name === 'ConfigError' && /LINK_SIGNING_SECRET/.test(e.message));
    });

    it('defaults mail to the loopback sink and links to the local API', () => {
      const config = loadConfig({ PORT: '8080' });
      assert.equal(config.smtpHost, undefined);
      assert.equal(config.smtpPort, 2525);
      assert.equal(config.mailFrom, 'billing@closeloop.local');
      assert.equal(config.publicUrl, 'http://127.0.0.1:8080');
    });

    it('trims surrounding whitespace from string settings and ports', () => {
      const config = loadConfig({ TEMPORAL_NAMESPACE: ' billing\n', DATABASE_URL: ' postgres://db/x ', PORT: ' 8080 ' });
      assert.equal(config.temporalNamespace, 'billing');
      assert.equal(config.databaseUrl, 'postgres://db/x');
      assert.equal(config.apiPort, 8080);
    });

    it('accepts the port range boundaries 0 and 65535', () => {
      assert.equal(loadConfig({ PORT: '0' }).apiPort, 0);
      assert.equal(loadConfig({ PORT: '65535' }).apiPort, 65535);
    });

    it('resolves a relative CLOSELOOP_STATE_DIR to an absolute path', () => {
      assert.equal(loadConfig({ CLOSELOOP_STATE_DIR: 'rel/state' }).stateDir, path.resolve('rel/state'));
    });

    it('accepts both postgres:// and postgresql:// URLs', () => {
      assert.equal(loadConfig({ DATABASE_URL: 'postgres://localhost/db' }).databaseUrl, 'postgres://localhost/db');
      assert.equal(loadConfig({ DATABASE_URL: 'postgresql://localhost/db' }).databaseUrl, 'postgresql://localhost/db');
    });
  });

  describe('loadConfig rejects bad values, naming the variable', () => {
    const badPorts = ['abc', '-1', '65536', '3.5', '80abc', '1e3', '0x50', '+80', 'Infinity', '8 080'];
    for (const bad of badPorts) {
      it(`PORT=${JSON.stringify(bad)}`, () => {
        assert.throws(() => loadConfig({ PORT: bad }), configError('PORT', /TCP port number/));
      });
    }

    for (const bad of ['abc', '70000', '-7233', '7233.5']) {
      it(`TEMPORAL_DEV_PORT=${JSON.stringify(bad)}`, () => {
        assert.throws(() => loadConfig({ TEMPORAL_DEV_PORT: bad }), configError('TEMPORAL_DEV_PORT', /TCP port number/));
      });
    }

    it('quotes the bad port value in the message', () => {
      assert.throws(() => loadConfig({ PORT: 'eighty' }), /got "eighty"/);
    });

    it('TEMPORAL_UI_PORT and EMBEDDED_PG_PORT are checked too', () => {
      assert.throws(() => loadConfig({ TEMPORAL_UI_PORT: 'ui' }), configError('TEMPORAL_UI_PORT'));
      assert.throws(() => loadConfig({ EMBEDDED_PG_PORT: '99999' }), configError('EMBEDDED_PG_PORT'));
    });

    for (const bad of ['mysql://localhost/db', 'http://localhost', 'localhost:5432/db', 'jdbc:postgresql://db/x', 'postgres:/db', 'file:///tmp/db']) {
      it(`DATABASE_URL=${JSON.stringify(bad)}`, () => {
        assert.throws(() => loadConfig({ DATABASE_URL: bad }), configError('DATABASE_URL', /postgres:\/\/ or postgresql:\/\//));
      });
    }

    it('does not echo a rejected DATABASE_URL, which may hold a password', () => {
      assert.throws(
        () => loadConfig({ DATABASE_URL: 'mysql://admin:s3cret@db/x' }),
        (err: unknown) => err instanceof ConfigError && !err.message.includes('s3cret'),
      );
    });

    it('LOG_LEVEL outside pino\'s levels', () => {
      assert.throws(() => loadConfig({ LOG_LEVEL: 'verbose' }), configError('LOG_LEVEL', /got "verbose"/));
      assert.throws(() => loadConfig({ LOG_LEVEL: 'INFO' }), configError('LOG_LEVEL'));
    });
  });

  describe('requireExternal', () => {
    const base: Config = loadConfig({});
    const withDb: Config = { ...base, databaseUrl: 'postgres://db/x' };
    const withTemporal: Config = { ...base, temporalAddress: 'temporal:7233' };
    const withBoth: Config = { ...base, databaseUrl: 'postgres://db/x', temporalAddress: 'temporal:7233' };

    it('names both missing variables', () => {
      assert.throws(
        () => requireExternal(base, ['DATABASE_URL', 'TEMPORAL_ADDRESS']),
        (err: unknown) =>
          err instanceof ConfigError && err.message.startsWith('DATABASE_URL and TEMPORAL_ADDRESS must be set') && /npm start/.test(err.message),
      );
    });

    it('names only the variable that is missing', () => {
      assert.throws(
        () => requireExternal(withDb, ['DATABASE_URL', 'TEMPORAL_ADDRESS']),
        (err: unknown) => err instanceof ConfigError && err.message.startsWith('TEMPORAL_ADDRESS must be set') && !err.message.includes('DATABASE_URL'),
      );
      assert.throws(
        () => requireExternal(withTemporal, ['DATABASE_URL', 'TEMPORAL_ADDRESS']),
        (err: unknown) => err instanceof ConfigError && err.message.startsWith('DATABASE_URL must be set') && !err.message.includes('TEMPORAL_ADDRESS'),
      );
    });

    it('only checks the variables it is asked about', () => {
      assert.doesNotThrow(() => requireExternal(withDb, ['DATABASE_URL']));
      assert.doesNotThrow(() => requireExternal(withTemporal, ['TEMPORAL_ADDRESS']));
      assert.doesNotThrow(() => requireExternal(base, []));
      assert.throws(() => requireExternal(withTemporal, ['DATABASE_URL']), configError('DATABASE_URL'));
    });

    it('passes when everything required is set', () => {
      assert.doesNotThrow(() => requireExternal(withBoth, ['DATABASE_URL', 'TEMPORAL_ADDRESS']));
    });

    it('passes for variables loaded from the environment', () => {
      const config = loadConfig({ DATABASE_URL: 'postgres://db/x', TEMPORAL_ADDRESS: 'temporal:7233' });
      assert.doesNotThrow(() => requireExternal(config, ['DATABASE_URL', 'TEMPORAL_ADDRESS']));
    });
  });

  describe('pathsFor', () => {
    it('places every state file under the state directory', () => {
      const paths = pathsFor(loadConfig({ CLOSELOOP_STATE_DIR: '/srv/state' }));
      assert.deepStrictEqual(paths, {
        postgresData: path.join('/srv/state', 'postgres'),
        temporalDb: path.join('/srv/state', 'temporal.sqlite'),
        devApiKey: path.join('/srv/state', 'dev-api-key'),
        runtime: path.join('/srv/state', 'runtime.json'),
      });
    });
  });
});
