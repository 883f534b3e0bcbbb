/**
 * The dispute workflow's query, update and signal, shared with the API and tests. No Node, DB or
 * network imports: this module is bundled into the workflow sandbox.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { DisputeDecision, DisputeKind, DisputeResolution, DisputeStatus } from '../domain/disputes';
import type { DisputeOutcome, OperatorDecision } from './shared';

/** What the dispute workflow is doing, as its query answers. */
export interface DisputeWorkflowState {
  disputeId: string;
  kind: DisputeKind | null;
  status: DisputeStatus;
  amountMinor: number;
  currency: string | null;
  /** The policy's first decision: "auto_credit" or why the dispute needed a closer look. */
  autoDecision: string | null;
  /** The evidence rule that decided or escalated it. */
  rule: string | null;
  /** Until when an operator may decide (escalated disputes). */
  decisionDeadline: string | null;
  /** Chargebacks: by when evidence must reach the gateway, and whether it did. */
  evidenceDueBy: string | null;
  evidenceSubmitted: boolean;
  decision: DisputeDecision | null;
  resolution: DisputeResolution | null;
  outcome: DisputeOutcome | null;
  creditedMinor: number;
  creditNoteId: string | null;
}

export const getDisputeQuery = defineQuery<DisputeWorkflowState>('getDispute');

/**
 * An operator's decision on an escalated dispute. The validator refuses it when the dispute is
 * not awaiting a decision, was already decided, or the amount exceeds the disputed one; the
 * caller gets the dispute's state once the decision has been carried out.
 */
export const disputeDecisionUpdate = defineUpdate<DisputeWorkflowState, [OperatorDecision]>('decideDispute');

/** The gateway's verdict on a chargeback whose evidence was submitted (sent by the webhook route). */
export interface ChargebackClosed {
  outcome: Extract<DisputeOutcome, 'won' | 'lost'>;
}
export const chargebackClosedSignal = defineSignal<[ChargebackClosed]>('chargebackClosed');
