/** What a finalized invoice says: the one shape behind the JSON, HTML, PDF and email. */

export type InvoiceLineKind = 'recurring' | 'usage' | 'usage_adjustment' | 'discount' | 'proration' | 'credit';

export interface InvoiceLineDocument {
  position: number;
  kind: InvoiceLineKind;
  description: string;
  metric: string | null;
  /** Exact decimal quantity, e.g. "12500" or "3.5"; null for flat lines. */
  quantity: string | null;
  /** Exact decimal unit price, e.g. "0.0004"; null where a line has no single unit price. */
  unitPrice: string | null;
  /** Integer minor units; negative for discounts and credits. */
  amountMinor: number;
  periodStart: string | null;
  periodEnd: string | null;
  /** Rating breakdown (tiers, included quantity…) for the usage detail section. */
  detail: Record<string, unknown>;
}

export interface InvoiceDocument {
  id: string;
  /** Human invoice number, e.g. "DEMO-000042". */
  number: string;
  kind: 'opening' | 'period' | 'final' | 'credit_note';
  status: 'finalized' | 'paid' | 'void';
  brand: { id: string; name: string };
  customer: { id: string; name: string | null; email: string };
  currency: string;
  issuedAt: string;
  dueAt: string;
  period: { number: number | null; start: string | null; end: string | null };
  lines: InvoiceLineDocument[];
  subtotalMinor: number;
  discountMinor: number;
  taxMinor: number;
  /** Percent as an exact decimal, e.g. "19". */
  taxRate: string;
  taxInclusive: boolean;
  creditAppliedMinor: number;
  totalMinor: number;
  amountDueMinor: number;
  /** How to pay, in words, for the presentment. */
  paymentInstructions: string;
}
