/**
 * `npm run bench`: progress on stderr, the summary table on stdout and in docs/benchmarks.md.
 */
import fs from 'node:fs';
import path from 'node:path';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { benchHistory, HistoryResult } from './history';
import { envInt, progress, startInfra } from './infra';
import { benchIngest, IngestResult } from './ingest';
import { document, table } from './report';

async function main(): Promise<void> {
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const only = process.env.BENCH_ONLY;
  const started = Date.now();
  const infra = await startInfra();
  let ingest: IngestResult | undefined;
  let history: HistoryResult | undefined;
  try {
    if (!only || only === 'ingest') {
      ingest = await benchIngest(infra, {
        events: envInt('BENCH_EVENTS', 200_000),
        batchSize: envInt('BENCH_BATCH', 5_000),
        concurrency: envInt('BENCH_CONCURRENCY', 4),
        rounds: envInt('BENCH_ROUNDS', 4),
      });
    }
    if (!only || only === 'history') {
      history = await benchHistory(infra, { periods: envInt('BENCH_PERIODS', 24), replayRepeats: envInt('BENCH_REPLAYS', 11) });
    }
  } finally {
    progress('stopping services and removing the temporary data dir…');
    await infra.stop();
  }
  const body = table(ingest, history);
  process.stdout.write(`${body}\n`);
  const out = path.resolve(__dirname, '..', '..', 'docs', 'benchmarks.md');
  fs.writeFileSync(out, document(body, Date.now() - started));
  progress(`wrote ${path.relative(process.cwd(), out)}`);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
