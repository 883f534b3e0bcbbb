/**
 * Names and payload types shared by workflows, the API, workers and tests. No Node, DB or
 * network imports: this module is bundled into the workflow sandbox.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { defineQuery } from '@temporalio/workflow';
import type { BillingPeriod } from '../domain/period';

export const DEFAULT_TASK_QUEUE = 'closeloop';

export type CustomerStage = 'lead' | 'active' | 'past_due' | 'suspended' | 'cancelled' | 'lead_expired';

/** Search attributes: every customer is findable in the Web UI by these. */
export const SA = {
  customerId: defineSearchAttributeKey('CustomerId', SearchAttributeType.KEYWORD),
  brandId: defineSearchAttributeKey('BrandId', SearchAttributeType.KEYWORD),
  stage: defineSearchAttributeKey('CustomerStage', SearchAttributeType.KEYWORD),
  plan: defineSearchAttributeKey('PlanCode', SearchAttributeType.KEYWORD),
  dunningState: defineSearchAttributeKey('DunningState', SearchAttributeType.KEYWORD),
} as const;

export const SEARCH_ATTRIBUTE_KEYS = Object.values(SA);

/** What a lead came with; attribution for the acquisition funnel. */
export interface LeadInfo {
  source: string;
  campaign: string;
  attributes: Record<string, string | number | boolean>;
}

export interface CustomerWorkflowInput {
  brandId: string;
  customerId: string;
  email: string;
  name?: string;
  /** Present when the customer starts as a lead (POST /v1/leads): stage `lead`, nurtured, may expire. */
  lead?: LeadInfo;
  /** ISO timestamp; the billing anchor. Set by the first run, carried across continue-as-new. */
  signedUpAt?: string;
  /** ISO-8601 duration of a billing period; the plan catalog supplies it later. */
  billingPeriod?: string;
  /** Carried across continue-as-new. */
  periodNumber?: number;
  stage?: CustomerStage;
}

export interface CustomerState {
  brandId: string;
  customerId: string;
  email: string;
  name: string | null;
  stage: CustomerStage;
  signedUpAt: string;
  billingPeriod: string;
  currentPeriod: BillingPeriod;
  plan: null;
  dunningState: 'none';
}

export const DEFAULT_BILLING_PERIOD = 'P1M';

export const getCustomerQuery = defineQuery<CustomerState>('getCustomer');

/** Stable error type names (ApplicationFailure.type). */
export const ErrorTypes = {
  INVALID_INPUT: 'INVALID_INPUT',
} as const;
