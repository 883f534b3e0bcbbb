/** Where Closeloop keeps local state when it runs on embedded defaults (git-ignored). */
import path from 'node:path';

export const PROJECT_ROOT = path.resolve(__dirname, '..', __dirname.includes(`${path.sep}dist${path.sep}`) ? '..' : '');

export function stateDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(env.CLOSELOOP_STATE_DIR ?? path.join(PROJECT_ROOT, '.closeloop'));
}
