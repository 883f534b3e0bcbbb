/** Every workflow type the worker registers. */
export { customerWorkflow } from './customer';
export { reconciliationWorkflow } from './reconciliation';
export { disputeWorkflow } from './dispute';
export { communicationWorkflow } from './communication';
