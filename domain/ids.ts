/** Identifier rules shared by the API, workflows and tests. */

export const BRAND_ID = /^[a-z0-9][a-z0-9-]{0,39}$/;
/** Client-chosen customer ids: letters, digits, `_`, `-`, `.`; never `:` (the workflow-id separator). */
export const CUSTOMER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/**
 * `customer-<brand>:<customer>`: one workflow per customer, and two brands may use the same
 * customer id without colliding (brand ids cannot contain `:`).
 */
export function customerWorkflowId(brandId: string, customerId: string): string {
  if (!BRAND_ID.test(brandId)) throw new RangeError(`invalid brand id "${brandId}"`);
  if (!CUSTOMER_ID.test(customerId)) throw new RangeError(`invalid customer id "${customerId}"`);
  return `customer-${brandId}:${customerId}`;
}
