/**
 * How workflows tell a customer something: start a `communicationWorkflow` child whose id is the
 * message's dedupe key. It is abandoned by its parent (it may wait out quiet hours while the
 * customer workflow continues as new), and a second start of the same message is a no-op.
 */
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { ParentClosePolicy, startChild, type ChildWorkflowHandle } from '@temporalio/workflow';
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
