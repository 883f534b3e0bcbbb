/**
 * One message to one customer, started by `tell()` with the message's dedupe key as its id:
 * decide it (duplicate, opted out, or to send), wait out the customer's quiet hours on a
 * durable timer (transactional messages do not wait), then deliver it with retries. A message that cannot be delivered is recorded
 * as failed and the workflow completes: a lost email must not fail the customer's lifecycle.
 */
import { ActivityFailure, ApplicationFailure, proxyActivities, sleep, workflowInfo } from '@temporalio/workflow';
import type { CommunicationActivities } from '../activities/communications';
import { NON_RETRYABLE_COMMUNICATION_ERRORS, quietHoursApply, quietHoursEnd } from '../domain/communication';
import type { CommunicationRequest } from './shared';
import { runOnLocalActivities, stepsFor } from './steps';

export interface CommunicationResult {
  status: 'sent' | 'suppressed' | 'duplicate' | 'failed';
  reason?: string;
  channel?: 'email' | 'webhook';
  /** Workflow time the message was handed to the mail server or webhook (after any quiet hours). */
  deliveredAt?: string;
}

// Bookkeeping in PostgreSQL: retried until the database answers; local activities since the
// 'local-activities' patch (workflows/steps.ts). Delivery stays an activity task of its own (as a
// local activity it measured slower in the period-close benchmark), its backing-off attempts over
// an hour visible as such in the Web UI.
const bookkeeping = stepsFor<CommunicationActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '1 minute' },
});

// Sending: a mail server or webhook that is down gets about an hour of backing-off attempts.
const delivery = proxyActivities<CommunicationActivities>({
  startToCloseTimeout: '2 minutes',
  retry: {
    initialInterval: '30 seconds',
    backoffCoefficient: 2,
    maximumInterval: '30 minutes',
    maximumAttempts: 8,
    nonRetryableErrorTypes: NON_RETRYABLE_COMMUNICATION_ERRORS,
  },
});

export async function communicationWorkflow(req: CommunicationRequest): Promise<CommunicationResult> {
  runOnLocalActivities();
  const message = { brandId: req.brandId, dedupeKey: req.dedupeKey };
  const decision = await bookkeeping.prepareMessage({ request: req, workflowId: workflowInfo().workflowId });
  if (decision.outcome !== 'send') return { status: decision.outcome, reason: decision.reason };

  // Quiet hours are read on workflow time: activities see the worker's clock, which is not the
  // timeline this workflow (and its timer) lives on.
  const now = new Date();
  const sendAt = quietHoursApply(req.category) ? quietHoursEnd(now, decision.timeZone, decision.quietHours) : now;
  if (sendAt.getTime() > now.getTime()) {
    await bookkeeping.recordQuietHoursWait({ ...message, until: sendAt.toISOString() });
    await sleep(sendAt.getTime() - now.getTime());
  }

  try {
    const delivered = await delivery.deliverMessage(message);
    return delivered.sent
      ? { status: 'sent', channel: delivered.channel, deliveredAt: new Date().toISOString() }
      : { status: 'duplicate', channel: delivered.channel, reason: 'already sent' };
  } catch (err) {
    if (!(err instanceof ActivityFailure)) throw err;
    // The last attempt's error (a type from CommunicationErrors, or a timeout) says why.
    const cause = err.cause;
    const reason = cause instanceof ApplicationFailure ? `${cause.type ?? 'Error'}: ${cause.message}` : (cause?.message ?? err.message);
    await bookkeeping.markMessageFailed({ ...message, error: reason });
    return { status: 'failed', reason };
  }
}
