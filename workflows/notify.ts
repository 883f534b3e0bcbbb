/**
 * How workflows tell a customer something: start a `communicationWorkflow` child whose id is the
 * message's dedupe key. It is abandoned by its parent (it may wait out quiet hours while the
 * customer workflow continues as new), and a second start of the same message is a no-op.
 */
import { WorkflowExecutionAlreadyStartedError, type Duration } from '@temporalio/common';
import { ChildWorkflowFailure, condition, log, ParentClosePolicy, startChild, type ChildWorkflowHandle } from '@temporalio/workflow';
import { communicationWorkflowId, CommunicationRequest } from './shared';

/** Returns the child's handle, or undefined when this message was started before. */
export async function tell(req: CommunicationRequest): Promise<ChildWorkflowHandle<(r: CommunicationRequest) => Promise<unknown>> | undefined> {
  try {
    return await startChild<(r: CommunicationRequest) => Promise<unknown>>('communicationWorkflow', {
      workflowId: communicationWorkflowId(req.brandId, req.dedupeKey),
      args: [req],
      parentClosePolicy: ParentClosePolicy.ABANDON,
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
    });
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return undefined;
    throw err;
  }
}

/**
 * Messages a run started, until they end. A run waits for them (a while) before it continues as
 * new or ends: a message waiting out quiet hours carries on alone (its parent abandons it), but an
 * immediate one is done before the run is, which keeps each run's story whole in the Web UI (and
 * sidesteps the time-skipping test server's lost time skipping when an abandoned child outlives
 * its parent's run, temporalio/sdk-java#1540).
 */
export class MessagesInFlight {
  private count = 0;

  track(child: { result(): Promise<unknown> } | undefined): void {
    if (!child) return;
    this.count += 1;
    child
      .result()
      .catch(() => undefined)
      .finally(() => {
        this.count -= 1;
      });
  }

  /**
   * Starts a message and tracks it without waiting for the server to confirm the start, so the
   * workflow's next step (a charge after the invoice email, say) runs in the same workflow task.
   */
  send(req: CommunicationRequest): void {
    this.track({
      result: () =>
        tell(req)
          .then((child) => child?.result())
          .catch((err) => {
            // A start the server refused for another reason than a duplicate, or a message that failed:
            // both are on record (the communications table, the child's history); billing goes on.
            if (!(err instanceof ChildWorkflowFailure)) log.warn('message not started', { dedupeKey: req.dedupeKey, error: (err as Error).message });
          }),
    });
  }

  /** Waits (at most `timeout`) until every tracked message has ended; no timer when none is running. */
  async delivered(timeout: Duration): Promise<void> {
    if (this.count > 0) await condition(() => this.count === 0, timeout);
  }
}
