/**
 * Invoice pages behind signed links (`/v1/shared/invoices/<token>.html|.pdf`): what the invoice
 * email links to, so a customer opens it without an API key. The token carries brand, invoice
 * and expiry under an HMAC; anything else answers 404, an expired link 410.
 */
import { Router } from 'express';
import { loadInvoiceDocument } from '../data/invoices';
import type { Db } from '../infra/db';
import { verifyInvoiceLink } from '../infra/signed-links';
import { renderInvoiceHtml } from '../presentment/invoice-html';
import { renderInvoicePdf } from '../presentment/invoice-pdf';
import { ApiError } from './errors';

export function createSharedInvoiceRouter({ db, linkSecret }: { db: Db; linkSecret?: string }): Router {
  const router = Router();
  router.get('/:file', async (req, res, next) => {
    try {
      const match = /^([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)\.(html|pdf)$/.exec(req.params.file ?? '');
      const check = match && linkSecret ? verifyInvoiceLink(linkSecret, match[1]!) : undefined;
      if (check && !check.ok && check.reason === 'expired') {
        throw new ApiError(410, 'LINK_EXPIRED', 'this invoice link has expired; ask for a new one');
      }
      const doc = check?.ok ? await loadInvoiceDocument(db, check.link.brandId, check.link.invoiceId) : undefined;
      if (!doc) throw new ApiError(404, 'NOT_FOUND', 'no invoice at this link');
      res.setHeader('X-Content-Type-Options', 'nosniff');
      res.setHeader('Cache-Control', 'private, no-cache');
      res.setHeader('Referrer-Policy', 'no-referrer');
      if (match![2] === 'html') {
        res.setHeader('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'");
        res.status(200).type('html').send(renderInvoiceHtml(doc));
      } else {
        res.setHeader('Content-Disposition', `inline; filename="${doc.number}.pdf"`);
        res.status(200).type('application/pdf').send(await renderInvoicePdf(doc));
      }
    } catch (err) {
      next(err);
    }
  });
  return router;
}
