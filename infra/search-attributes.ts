/**
 * Registers Closeloop's search attributes on a Temporal server (idempotent). The dev server
 * gets them from `npm start`'s flags; the time-skipping test server and fresh production
 * clusters get them here.
 */
import { temporal } from '@temporalio/proto';
import { SEARCH_ATTRIBUTE_KEYS } from '../workflows/shared';

type OperatorService = temporal.api.operatorservice.v1.OperatorService;

const KEYWORD = temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD;
const ALREADY_EXISTS = 6;

/** Takes a client Connection or a worker NativeConnection (both expose the operator service). */
export async function ensureSearchAttributes(connection: { operatorService: OperatorService }, namespace: string): Promise<void> {
  for (const key of SEARCH_ATTRIBUTE_KEYS) {
    try {
      await connection.operatorService.addSearchAttributes({ namespace, searchAttributes: { [key.name]: KEYWORD } });
    } catch (err) {
      const e = err as { code?: number; message?: string };
      if (e.code === ALREADY_EXISTS || /already exists/i.test(e.message ?? '')) continue;
      throw err;
    }
  }
}
