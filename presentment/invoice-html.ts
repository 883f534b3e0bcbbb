/**
 * The invoice as one self-contained HTML page (inline CSS, no external assets) that reads well
 * on screen and prints on A4. Every dynamic value goes through the `html` tag, which escapes it:
 * a customer called `<script>` is shown, never run.
 */
import type { InvoiceDocument } from '../domain/invoice-document';
import {
  customerLabel,
  documentTitle,
  formatDate,
  formatPeriod,
  lineRows,
  roundingNote,
  statusLabel,
  taxNote,
  totalRows,
  usageDetails,
  periodLabel,
} from './format';

/** Markup that is already escaped; anything else interpolated into `html` is escaped. */
export class SafeHtml {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
}

type Interpolation = SafeHtml | string | number | null | undefined | false | Interpolation[];

function render(value: Interpolation): string {
  if (value === null || value === undefined || value === false) return '';
  if (value instanceof SafeHtml) return value.value;
  if (Array.isArray(value)) return value.map(render).join('');
  return escapeHtml(String(value));
}

/** Template tag: literal parts pass through, interpolations are escaped unless they are SafeHtml. */
export function html(strings: TemplateStringsArray, ...values: Interpolation[]): SafeHtml {
  let out = strings[0] ?? '';
  values.forEach((v, i) => {
    out += render(v) + (strings[i + 1] ?? '');
  });
  return new SafeHtml(out);
}

/** Paragraphs and line breaks of free text (payment instructions), escaped. */
function multiline(text: string): SafeHtml[] {
  return text
    .trim()
    .split(/\n\s*\n/)
    .map((para) => html`<p>${para.split('\n').map((l, i) => (i === 0 ? html`${l}` : html`<br>${l}`))}</p>`);
}

const STYLE = `
  :root { --ink: #1f2933; --muted: #616e7c; --rule: #d9dee3; --band: #f4f6f8; --accent: #1f4e79; }
  * { box-sizing: border-box; }
  html { background: #eef1f4; }
  body { margin: 0; padding: 32px 16px; color: var(--ink);
         font: 14px/1.45 "Helvetica Neue", Helvetica, Arial, sans-serif; }
  .sheet { max-width: 820px; margin: 0 auto; background: #fff; padding: 48px 56px;
           border-radius: 4px; box-shadow: 0 1px 4px rgba(0,0,0,.12); }
  header { display: flex; justify-content: space-between; align-items: flex-start; gap: 24px;
           border-bottom: 3px solid var(--accent); padding-bottom: 20px; }
  .brand { font-size: 22px; font-weight: 700; color: var(--accent); }
  .title { text-align: right; }
  .title h1 { margin: 0; font-size: 24px; font-weight: 700; }
  .status { display: inline-block; margin-top: 6px; padding: 2px 10px; border: 2px solid currentColor;
            border-radius: 3px; font-weight: 700; letter-spacing: .08em; text-transform: uppercase; }
  .status.paid { color: #1e7b34; } .status.void { color: #b42318; }
  .facts { display: flex; justify-content: space-between; gap: 32px; margin: 28px 0; }
  .facts h2, section h2 { margin: 0 0 6px; font-size: 11px; font-weight: 700; letter-spacing: .08em;
                          text-transform: uppercase; color: var(--muted); }
  .billed-to p { margin: 0; }
  .billed-to .name { font-weight: 700; font-size: 15px; }
  dl { display: grid; grid-template-columns: auto auto; gap: 4px 16px; margin: 0; }
  dt { color: var(--muted); } dd { margin: 0; text-align: right; font-weight: 600; }
  table { width: 100%; border-collapse: collapse; }
  table.grid { table-layout: fixed; }
  col.qty { width: 15%; } col.price { width: 18%; } col.amount { width: 19%; }
  th { font-size: 11px; letter-spacing: .06em; text-transform: uppercase; color: var(--muted);
       text-align: left; border-bottom: 1px solid var(--ink); padding: 8px 6px; }
  td { border-bottom: 1px solid var(--rule); padding: 9px 6px; vertical-align: top; overflow-wrap: anywhere; }
  .num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
  .sub { display: block; color: var(--muted); font-size: 12px; }
  .totals { display: flex; justify-content: flex-end; margin-top: 16px; }
  .totals table { width: 360px; }
  .totals td { border: 0; padding: 4px 6px; }
  .totals .due td { border-top: 2px solid var(--ink); padding-top: 10px; font-size: 17px; font-weight: 700; }
  .note { color: var(--muted); font-size: 12px; text-align: right; margin: 6px 0 0; }
  section { margin-top: 32px; }
  .usage h3 { font-size: 13px; margin: 16px 0 4px; }
  .usage table td, .usage table th { font-size: 12px; padding: 5px 6px; }
  .usage .rounded td { border-bottom: 0; color: var(--muted); }
  .pay { background: var(--band); border-left: 4px solid var(--accent); padding: 14px 18px; }
  .pay p { margin: 0 0 8px; } .pay p:last-child { margin-bottom: 0; }
  footer { margin-top: 36px; padding-top: 12px; border-top: 1px solid var(--rule); color: var(--muted);
           font-size: 12px; display: flex; justify-content: space-between; gap: 16px; }
  @page { size: A4; margin: 16mm 14mm; }
  @media print {
    html, body { background: #fff; padding: 0; }
    .sheet { box-shadow: none; padding: 0; max-width: none; border-radius: 0; }
    thead { display: table-header-group; }
    tr, .totals, .how-to-pay { break-inside: avoid; }
    h2, h3 { break-after: avoid; }
    a { color: inherit; text-decoration: none; }
  }
`;

/** The lines and the usage tiers share one column grid, so their amounts line up. */
const COLUMNS = new SafeHtml('<colgroup><col><col class="qty"><col class="price"><col class="amount"></colgroup>');

export function renderInvoiceHtml(doc: InvoiceDocument): string {
  const title = documentTitle(doc);
  const status = statusLabel(doc);
  const period = formatPeriod(doc.period.start, doc.period.end);
  const details = usageDetails(doc);
  const name = doc.customer.name?.trim();

  const page = html`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} — ${doc.brand.name}</title>
<style>${new SafeHtml(STYLE)}</style>
</head>
<body>
<main class="sheet">
  <header>
    <div class="brand">${doc.brand.name}</div>
    <div class="title">
      <h1>${title}</h1>
      ${status ? html`<div class="status ${doc.status}">${status}</div>` : ''}
    </div>
  </header>

  <div class="facts">
    <div class="billed-to">
      <h2>Billed to</h2>
      ${name ? html`<p class="name">${name}</p>` : ''}
      <p>${doc.customer.email}</p>
      <p class="sub">Customer ID ${doc.customer.id}</p>
    </div>
    <dl>
      <dt>Invoice number</dt><dd>${doc.number}</dd>
      <dt>Issue date</dt><dd>${formatDate(doc.issuedAt)}</dd>
      <dt>Due date</dt><dd>${formatDate(doc.dueAt)}</dd>
      ${period ? html`<dt>${periodLabel(doc)}</dt><dd>${period}</dd>` : ''}
      <dt>Amount due</dt><dd>${totalRows(doc).find((r) => r.emphasis)?.amount}</dd>
    </dl>
  </div>

  <table class="grid lines">
    ${COLUMNS}
    <thead>
      <tr><th>Description</th><th class="num">Quantity</th><th class="num">Unit price</th><th class="num">Amount</th></tr>
    </thead>
    <tbody>
      ${lineRows(doc).map(
        (l) => html`
      <tr>
        <td>${l.description}${l.period ? html`<span class="sub">${l.period}</span>` : ''}</td>
        <td class="num">${l.quantity}</td>
        <td class="num">${l.unitPrice}</td>
        <td class="num">${l.amount}</td>
      </tr>`,
      )}
    </tbody>
  </table>

  <div class="totals">
    <table>
      ${totalRows(doc).map(
        (r) => html`
      <tr${r.emphasis ? new SafeHtml(' class="due"') : ''}><td>${r.label}</td><td class="num">${r.amount}</td></tr>`,
      )}
    </table>
  </div>
  <p class="note">${taxNote(doc)}</p>

  ${details.length > 0
    ? html`<section class="usage">
    <h2>Usage detail</h2>
    ${details.map(
      (d) => html`
    <h3>${d.description}</h3>
    <table class="grid">
      ${COLUMNS}
      <thead><tr><th>Tier</th><th class="num">Quantity</th><th class="num">Unit price</th><th class="num">Amount</th></tr></thead>
      <tbody>
        ${d.rows.map(
          (r) => html`
        <tr><td>${r.description}</td><td class="num">${r.quantity}</td><td class="num">${r.unitPrice}</td><td class="num">${r.amount}</td></tr>`,
        )}
        <tr class="rounded"><td colspan="3">${roundingNote(doc.currency)}</td><td class="num">${d.lineAmount}</td></tr>
      </tbody>
    </table>`,
    )}
  </section>`
    : ''}

  ${doc.paymentInstructions.trim()
    ? html`<section class="how-to-pay">
    <h2>How to pay</h2>
    <div class="pay">${multiline(doc.paymentInstructions)}</div>
  </section>`
    : ''}

  <footer>
    <span>${doc.brand.name} · ${title} · ${customerLabel(doc)}</span>
    <span>Reference ${doc.id}</span>
  </footer>
</main>
</body>
</html>
`;
  return page.value;
}
