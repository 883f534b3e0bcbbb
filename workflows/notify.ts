/**
 * How workflows tell a customer something: start a `communicationWorkflow` child whose id is the
 * message's dedupe key. It is abandoned by its parent (it may wait out quiet hours while the
 * customer workflow continues as new), and a second start of the same message is a no-op.
 */
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { ParentClosePolicy, startChild } from '@temporalio/workflow';
import { communicationWorkflowId, CommunicationRequest } from './shared';

export async function tell(req: CommunicationRequest): Promise<void> {
  try {
    await startChild('communicationWorkflow', {
      workflowId: communicationWorkflowId(req.brandId, req.dedupeKey),
      args: [req],
      parentClosePolicy: ParentClosePolicy.ABANDON,
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
    });
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return;
    throw err;
  }
}
