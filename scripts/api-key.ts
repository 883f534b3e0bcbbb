/**
 * Creates an API key for a brand and prints it once (only its hash is stored).
 *
 *   npm run api-key -- --brand acme
 *   npm run api-key -- --brand acme --create --name "Acme Inc" --currency EUR --mode live --label "billing app"
 */
import { parseArgs } from 'node:util';
import { createApiKey } from '../api/auth';
import { ensureBrand } from '../infra/brands';
import { loadConfig } from '../infra/config';
import { scriptDb } from './script-db';

const USAGE = 'usage: npm run api-key -- --brand <id> [--label <text>] [--create --name <name> --currency <ISO code> --mode sandbox|live]';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      brand: { type: 'string' },
      label: { type: 'string', default: '' },
      create: { type: 'boolean', default: false },
      name: { type: 'string' },
      currency: { type: 'string', default: 'USD' },
      mode: { type: 'string', default: 'sandbox' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help || !values.brand) {
    console.log(USAGE);
    process.exit(values.help ? 0 : 2);
  }
  if (values.mode !== 'sandbox' && values.mode !== 'live') throw new Error(`--mode must be sandbox or live, got "${values.mode}"`);
  const { db, close } = await scriptDb(loadConfig());
  try {
    if (values.create) {
      await ensureBrand(db, { id: values.brand, name: values.name ?? values.brand, currency: values.currency!, mode: values.mode });
    }
    const key = await createApiKey(db, values.brand, values.label);
    console.log(key);
    console.error(`API key for brand "${values.brand}" created; it is shown only this once.`);
  } finally {
    await close();
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
