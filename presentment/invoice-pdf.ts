/**
 * The invoice as an A4 PDF (pdfkit, the standard Helvetica fonts, nothing downloaded): the same
 * content as the HTML page, with a lines table that breaks across pages and repeats its header.
 * The document's dates come from the invoice, so the same invoice renders to the same bytes.
 */
import PDFDocument from 'pdfkit';
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

const INK = '#1f2933';
const MUTED = '#616e7c';
const RULE = '#d9dee3';
const BAND = '#f4f6f8';
const ACCENT = '#1f4e79';
const PAID = '#1e7b34';
const VOID = '#b42318';

const REGULAR = 'Helvetica';
const BOLD = 'Helvetica-Bold';

const MARGIN = { top: 50, bottom: 60, left: 50, right: 50 };
/** Space kept free at the bottom of every page for the footer. */
const FOOTER_GAP = 14;

/** The Windows-1252 characters (beyond Latin-1) that pdfkit's standard fonts can draw. */
const WIN_ANSI_EXTRA = new Set('€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ');

/**
 * The standard PDF fonts only cover Windows-1252. Accents are kept where the character exists
 * there, dropped where only the base letter exists ("ő" → "o"), and anything else becomes "?"
 * instead of the garbage pdfkit would otherwise write.
 */
export function toWinAnsi(text: string): string {
  let out = '';
  for (const ch of text.normalize('NFC')) {
    const code = ch.codePointAt(0) ?? 0;
    if (ch === '\n' || (code >= 0x20 && code <= 0x7e) || (code >= 0xa0 && code <= 0xff) || WIN_ANSI_EXTRA.has(ch)) {
      out += ch;
      continue;
    }
    if (ch === '\t') {
      out += ' ';
      continue;
    }
    const base = ch.normalize('NFKD').replace(/[\u0300-\u036f]/g, '');
    out += base && [...base].every((c) => (c.codePointAt(0) ?? 0) >= 0x20 && (c.codePointAt(0) ?? 0) <= 0xff) ? base : '?';
  }
  return out;
}

interface Column {
  width: number;
  align: 'left' | 'right';
}

export function renderInvoicePdf(doc: InvoiceDocument): Promise<Buffer> {
  const issued = new Date(doc.issuedAt);
  const stamp = Number.isNaN(issued.getTime()) ? new Date(0) : issued;
  const title = documentTitle(doc);
  const pdf = new PDFDocument({
    size: 'A4',
    margins: MARGIN,
    bufferPages: true,
    lang: 'en',
    displayTitle: true,
    info: {
      // Metadata strings are Unicode (UTF-16) in PDF; only drawn text is limited to the fonts.
      Title: `${title} — ${doc.brand.name}`,
      Author: doc.brand.name,
      Subject: `${title} for ${customerLabel(doc)}`,
      Keywords: `invoice ${doc.number} ${doc.customer.id}`,
      Creator: 'Closeloop',
      Producer: 'Closeloop (PDFKit)',
      CreationDate: stamp,
      ModDate: stamp,
    },
  });
  const chunks: Buffer[] = [];
  const done = new Promise<Buffer>((resolve, reject) => {
    pdf.on('data', (c: Buffer) => chunks.push(c));
    pdf.on('end', () => resolve(Buffer.concat(chunks)));
    pdf.on('error', reject);
  });

  const left = MARGIN.left;
  const contentWidth = pdf.page.width - MARGIN.left - MARGIN.right;
  const right = left + contentWidth;
  const bottom = () => pdf.page.height - MARGIN.bottom - FOOTER_GAP;

  const text = (value: string, x: number, y: number, opts: PDFKit.Mixins.TextOptions = {}) => {
    pdf.text(toWinAnsi(value), x, y, { lineBreak: true, ...opts });
  };
  const heightOf = (value: string, width: number, font: string, size: number) => {
    pdf.font(font).fontSize(size);
    return pdf.heightOfString(toWinAnsi(value) || ' ', { width });
  };
  const rule = (y: number, color = RULE, width = 0.75, x0 = left, x1 = right) => {
    pdf.save().moveTo(x0, y).lineTo(x1, y).lineWidth(width).strokeColor(color).stroke().restore();
  };
  /** Starts a new page when `height` does not fit; returns true when it did. */
  const ensureSpace = (height: number): boolean => {
    if (pdf.y + height <= bottom()) return false;
    pdf.addPage();
    pdf.font(REGULAR).fontSize(8).fillColor(MUTED);
    text(`${title} (continued)`, left, MARGIN.top - 22, { width: contentWidth, align: 'right' });
    pdf.y = MARGIN.top;
    return true;
  };

  // Header: brand left, title right, a rule in the brand colour.
  const top = MARGIN.top;
  pdf.font(BOLD).fontSize(18).fillColor(ACCENT);
  text(doc.brand.name, left, top, { width: contentWidth * 0.55 });
  const brandBottom = pdf.y;
  pdf.font(BOLD).fontSize(18).fillColor(INK);
  text(title, left + contentWidth * 0.45, top, { width: contentWidth * 0.55, align: 'right' });
  let headerBottom = Math.max(brandBottom, pdf.y);
  const status = statusLabel(doc);
  if (status) {
    const color = doc.status === 'paid' ? PAID : VOID;
    pdf.font(BOLD).fontSize(10);
    const label = status.toUpperCase();
    const w = pdf.widthOfString(label, { characterSpacing: 1 }) + 16;
    const y = headerBottom + 4;
    pdf.save().roundedRect(right - w, y, w, 18, 2).lineWidth(1.5).strokeColor(color).stroke().restore();
    pdf.fillColor(color);
    text(label, right - w, y + 5, { width: w, align: 'center', characterSpacing: 1 });
    headerBottom = y + 18;
  }
  rule(headerBottom + 10, ACCENT, 2);

  // Billed to (left) and the invoice facts (right).
  const factsTop = headerBottom + 28;
  const caption = (label: string, x: number, y: number, width: number) => {
    pdf.font(BOLD).fontSize(7.5).fillColor(MUTED);
    text(label.toUpperCase(), x, y, { width, characterSpacing: 0.8 });
  };
  const billedWidth = contentWidth * 0.42;
  caption('Billed to', left, factsTop, billedWidth);
  let y = factsTop + 14;
  const name = doc.customer.name?.trim();
  if (name) {
    pdf.font(BOLD).fontSize(11).fillColor(INK);
    text(name, left, y, { width: billedWidth });
    y = pdf.y + 1;
  }
  pdf.font(REGULAR).fontSize(10).fillColor(INK);
  text(doc.customer.email, left, y, { width: billedWidth });
  pdf.font(REGULAR).fontSize(9).fillColor(MUTED);
  text(`Customer ID ${doc.customer.id}`, left, pdf.y + 2, { width: billedWidth });
  const billedBottom = pdf.y;

  const period = formatPeriod(doc.period.start, doc.period.end);
  const amountDue = totalRows(doc).find((r) => r.emphasis)?.amount ?? '';
  const facts: Array<[string, string]> = [
    ['Invoice number', doc.number],
    ['Issue date', formatDate(doc.issuedAt)],
    ['Due date', formatDate(doc.dueAt)],
    ...(period ? [[periodLabel(doc), period] as [string, string]] : []),
    ['Amount due', amountDue],
  ];
  const factsX = left + contentWidth * 0.45;
  const factsLabelWidth = 70;
  const factsValueWidth = right - factsX - factsLabelWidth;
  y = factsTop;
  for (const [label, value] of facts) {
    pdf.font(REGULAR).fontSize(9.5).fillColor(MUTED);
    text(label, factsX, y, { width: factsLabelWidth });
    pdf.font(BOLD).fontSize(9.5).fillColor(INK);
    text(value, factsX + factsLabelWidth, y, { width: factsValueWidth, align: 'right' });
    y = pdf.y + 4;
  }
  pdf.y = Math.max(billedBottom, y) + 22;

  // A table: header row repeated after every page break, rows kept whole.
  /** `span` lets the first cell run over that many columns (a note under tiers). */
  const table = (columns: Column[], header: string[], rows: Array<{ cells: string[]; sub?: string; muted?: boolean; span?: number }>, size: number) => {
    const xs = columns.reduce<number[]>((acc, c, i) => [...acc, (acc[i - 1] ?? left) + (i === 0 ? 0 : columns[i - 1]!.width)], []);
    const pad = 4;
    const drawHeader = () => {
      const hy = pdf.y;
      pdf.font(BOLD).fontSize(7.5).fillColor(MUTED);
      header.forEach((h, i) => text(h.toUpperCase(), xs[i]! + pad, hy, { width: columns[i]!.width - 2 * pad, align: columns[i]!.align, characterSpacing: 0.6 }));
      rule(hy + 13, INK, 0.75);
      pdf.y = hy + 19;
    };
    ensureSpace(40);
    drawHeader();
    for (const row of rows) {
      const widthOf = (i: number) =>
        i === 0 ? columns.slice(0, row.span ?? 1).reduce((sum, c) => sum + c.width, 0) - 2 * pad : columns[i]!.width - 2 * pad;
      const cellHeights = row.cells.map((c, i) => heightOf(c, widthOf(i), REGULAR, size));
      const subHeight = row.sub ? heightOf(row.sub, columns[0]!.width - 2 * pad, REGULAR, size - 1.5) + 1 : 0;
      const height = Math.max(...cellHeights, (cellHeights[0] ?? 0) + subHeight) + 10;
      if (ensureSpace(height)) drawHeader();
      const ry = pdf.y;
      row.cells.forEach((c, i) => {
        pdf.font(REGULAR).fontSize(size).fillColor(row.muted ? MUTED : INK);
        if (c) text(c, xs[i]! + pad, ry, { width: widthOf(i), align: columns[i]!.align });
      });
      if (row.sub) {
        pdf.font(REGULAR).fontSize(size - 1.5).fillColor(MUTED);
        text(row.sub, xs[0]! + pad, ry + (cellHeights[0] ?? 0) + 1, { width: columns[0]!.width - 2 * pad });
      }
      rule(ry + height - 5);
      pdf.y = ry + height;
    }
  };

  const columns: Column[] = [
    { width: contentWidth - 75 - 100 - 105, align: 'left' },
    { width: 75, align: 'right' },
    { width: 100, align: 'right' },
    { width: 105, align: 'right' },
  ];
  table(
    columns,
    ['Description', 'Quantity', 'Unit price', 'Amount'],
    lineRows(doc).map((l) => ({ cells: [l.description, l.quantity, l.unitPrice, l.amount], sub: l.period })),
    9.5,
  );

  // Totals, right-aligned under the amounts, kept together on one page.
  const totals = totalRows(doc);
  const note = taxNote(doc);
  const totalsWidth = 260;
  const totalsX = right - totalsWidth;
  const noteHeight = heightOf(note, contentWidth, REGULAR, 8);
  ensureSpace(totals.length * 18 + 16 + noteHeight + 12);
  y = pdf.y + 8;
  for (const row of totals) {
    if (row.emphasis) {
      rule(y + 2, INK, 1.5, totalsX, right);
      y += 9;
    }
    const size = row.emphasis ? 12 : 9.5;
    pdf.font(row.emphasis ? BOLD : REGULAR).fontSize(size).fillColor(INK);
    text(row.label, totalsX + 4, y, { width: totalsWidth * 0.55 });
    pdf.font(row.emphasis ? BOLD : REGULAR).fontSize(size);
    text(row.amount, totalsX + totalsWidth * 0.4, y, { width: totalsWidth * 0.6 - 4, align: 'right' });
    y = pdf.y + 5;
  }
  pdf.font(REGULAR).fontSize(8).fillColor(MUTED);
  text(note, left, y + 2, { width: contentWidth - 4, align: 'right' });
  pdf.y += 8;

  const sectionHeading = (label: string) => {
    ensureSpace(60);
    pdf.y += 14;
    caption(label, left, pdf.y, contentWidth);
    pdf.y += 4;
  };

  const details = usageDetails(doc);
  if (details.length > 0) {
    sectionHeading('Usage detail');
    for (const d of details) {
      ensureSpace(60);
      pdf.font(BOLD).fontSize(9.5).fillColor(INK);
      text(d.description, left, pdf.y + 6, { width: contentWidth });
      pdf.y += 4;
      table(
        columns,
        ['Tier', 'Quantity', 'Unit price', 'Amount'],
        [
          ...d.rows.map((r) => ({ cells: [r.description, r.quantity, r.unitPrice, r.amount] })),
          { cells: [roundingNote(doc.currency), '', '', d.lineAmount], muted: true, span: 3 },
        ],
        8.5,
      );
    }
  }

  const instructions = doc.paymentInstructions.trim();
  if (instructions) {
    const boxPad = 10;
    const boxTextWidth = contentWidth - 2 * boxPad - 4;
    const boxHeight = heightOf(instructions, boxTextWidth, REGULAR, 9.5) + 2 * boxPad;
    ensureSpace(boxHeight + 40);
    sectionHeading('How to pay');
    const by = pdf.y + 4;
    pdf.save().rect(left, by, contentWidth, boxHeight).fill(BAND).restore();
    pdf.save().rect(left, by, 3, boxHeight).fill(ACCENT).restore();
    pdf.font(REGULAR).fontSize(9.5).fillColor(INK);
    text(instructions, left + boxPad + 4, by + boxPad, { width: boxTextWidth });
    pdf.y = by + boxHeight;
  }

  // Footer on every page; the bottom margin is lifted while it is drawn so pdfkit adds no page.
  const range = pdf.bufferedPageRange();
  for (let i = range.start; i < range.start + range.count; i++) {
    pdf.switchToPage(i);
    const savedBottom = pdf.page.margins.bottom;
    pdf.page.margins.bottom = 0;
    const fy = pdf.page.height - MARGIN.bottom + 4;
    rule(fy - 6);
    pdf.font(REGULAR).fontSize(8).fillColor(MUTED);
    text(`${doc.brand.name} · ${title} · ${customerLabel(doc)}`, left, fy, { width: contentWidth * 0.7, lineBreak: false, ellipsis: true });
    text(`Page ${i - range.start + 1} of ${range.count}`, left + contentWidth * 0.7, fy, { width: contentWidth * 0.3, align: 'right', lineBreak: false });
    pdf.page.margins.bottom = savedBottom;
  }
  pdf.end();
  return done;
}
