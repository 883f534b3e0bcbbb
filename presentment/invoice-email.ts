/**
 * The "invoice ready" email: a short message with the amount, the due date and a link to the
 * invoice page, plain text and HTML (inline styles, as mail clients drop <style>), with the PDF
 * attached. Rendered from the same InvoiceDocument as the page and the PDF.
 */
import type { InvoiceDocument } from '../domain/invoice-document';
import { documentTitle, formatDate, formatMoney, formatPeriod, lineRows, totalRows } from './format';
import { html } from './invoice-html';
import { renderInvoicePdf } from './invoice-pdf';

export interface InvoiceEmail {
  subject: string;
  text: string;
  html: string;
  attachments: Array<{ filename: string; content: Buffer; contentType: string }>;
}

export interface InvoiceEmailOptions {
  /** Where the customer can view the invoice (the HTML page); http or https only. */
  viewUrl: string;
}

function checkedUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new RangeError(`viewUrl is not a URL: "${raw}"`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new RangeError(`viewUrl must be http or https, got "${url.protocol}"`);
  return url.href;
}

/** One line of a header: mail headers must not carry line breaks from customer data. */
const oneLine = (s: string) => s.replace(/\s+/g, ' ').trim();

export async function invoiceEmail(doc: InvoiceDocument, options: InvoiceEmailOptions): Promise<InvoiceEmail> {
  const viewUrl = checkedUrl(options.viewUrl);
  const title = documentTitle(doc);
  const due = formatMoney(doc.amountDueMinor, doc.currency);
  const dueDate = formatDate(doc.dueAt);
  const owes = doc.amountDueMinor > 0;
  const subject = oneLine(
    owes ? `${title} from ${doc.brand.name}: ${due} due ${dueDate}` : `${title} from ${doc.brand.name}: nothing to pay`,
  );
  const period = formatPeriod(doc.period.start, doc.period.end);
  const greeting = doc.customer.name?.trim() ? `Hello ${doc.customer.name.trim()},` : 'Hello,';
  const intro = `${title} from ${doc.brand.name}${period ? ` for ${period}` : ''} is ready.`;
  const ask = owes
    ? `Amount due: ${due}, by ${dueDate}.`
    : `Amount due: ${due}. There is nothing to pay${doc.status === 'paid' ? ': it has been paid.' : '.'}`;
  const filename = `${doc.number.replace(/[^A-Za-z0-9._-]+/g, '-')}.pdf`;
  const lines = lineRows(doc);
  const totals = totalRows(doc);
  const width = Math.max(...[...lines.map((l) => l.description), ...totals.map((t) => t.label)].map((s) => s.length), 20);
  const amountWidth = Math.max(...[...lines.map((l) => l.amount), ...totals.map((t) => t.amount)].map((s) => s.length));
  const row = (label: string, amount: string) => `  ${label.padEnd(width)}  ${amount.padStart(amountWidth)}`;

  const text = [
    greeting,
    '',
    intro,
    ask,
    '',
    ...lines.map((l) => row(l.description, l.amount)),
    `  ${'-'.repeat(width + 2 + amountWidth)}`,
    ...totals.map((t) => row(t.label, t.amount)),
    '',
    `View the invoice: ${viewUrl}`,
    `The PDF is attached (${filename}).`,
    ...(owes && doc.paymentInstructions.trim() ? ['', 'How to pay', doc.paymentInstructions.trim()] : []),
    '',
    `${doc.brand.name}`,
    '',
  ].join('\n');

  const cell = 'padding:6px 0;border-bottom:1px solid #e4e7eb;';
  const body = html`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${title}</title></head>
<body style="margin:0;padding:0;background:#eef1f4;">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="background:#eef1f4;padding:24px 0;">
<tr><td align="center">
<table role="presentation" width="560" cellpadding="0" cellspacing="0" style="max-width:560px;width:100%;background:#ffffff;border-radius:4px;font-family:Helvetica,Arial,sans-serif;color:#1f2933;font-size:14px;line-height:1.5;">
<tr><td style="padding:24px 32px;border-bottom:3px solid #1f4e79;font-size:20px;font-weight:bold;color:#1f4e79;">${doc.brand.name}</td></tr>
<tr><td style="padding:24px 32px 8px;">
<p style="margin:0 0 12px;">${greeting}</p>
<p style="margin:0 0 16px;">${intro}</p>
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="background:#f4f6f8;border-left:4px solid #1f4e79;">
<tr><td style="padding:14px 18px;">
<div style="font-size:12px;color:#616e7c;text-transform:uppercase;letter-spacing:1px;">Amount due</div>
<div style="font-size:24px;font-weight:bold;">${due}</div>
<div style="color:#616e7c;">${owes ? `Due ${dueDate}` : 'Nothing to pay'} · ${doc.number}</div>
</td></tr></table>
<p style="margin:20px 0;"><a href="${viewUrl}" style="display:inline-block;background:#1f4e79;color:#ffffff;text-decoration:none;font-weight:bold;padding:10px 20px;border-radius:3px;">View invoice</a></p>
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="font-size:13px;">
${lines.map((l) => html`<tr><td style="${cell}">${l.description}</td><td align="right" style="${cell}white-space:nowrap;">${l.amount}</td></tr>
`)}${totals.map(
    (t) => html`<tr><td style="padding:4px 0;${t.emphasis ? 'font-weight:bold;' : ''}">${t.label}</td><td align="right" style="padding:4px 0;white-space:nowrap;${t.emphasis ? 'font-weight:bold;' : ''}">${t.amount}</td></tr>
`,
  )}</table>
${owes && doc.paymentInstructions.trim()
    ? html`<p style="margin:20px 0 4px;font-weight:bold;">How to pay</p>
<p style="margin:0;white-space:pre-line;">${doc.paymentInstructions.trim()}</p>`
    : ''}
<p style="margin:20px 0 0;color:#616e7c;font-size:12px;">The invoice is attached as a PDF. If the button does not work, open <a href="${viewUrl}" style="color:#1f4e79;">${viewUrl}</a>.</p>
</td></tr>
<tr><td style="padding:16px 32px 24px;color:#616e7c;font-size:12px;">${doc.brand.name}</td></tr>
</table>
</td></tr></table>
</body></html>
`;

  return {
    subject,
    text,
    html: body.value,
    attachments: [{ filename, content: await renderInvoicePdf(doc), contentType: 'application/pdf' }],
  };
}
