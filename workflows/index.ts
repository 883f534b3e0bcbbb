/** Every workflow type the worker registers. */
export { customerWorkflow } from './customer';
export { reconciliationWorkflow } from './reconciliation';
