/**
 * Mail that arrives for the distribution addresses of a sending domain: VERP bounce
 * addresses (`bounces+TOKEN@`), unsubscribe addresses (`unsubscribe+TOKEN@`) and the
 * complaint address (`fbl@`) that receives ARF reports. An MX listener calls `route` at RCPT
 * time and `receive` after DATA.
 * NOTE: Herald's MX listener in `src/smtp/` does not call them yet.
 */
import { getHeader } from '../message/index.js';
import { classifyDsnRecipient, classifyText } from './classify.js';
import type { FeedbackOutcome, FeedbackRecorder } from './feedback.js';
import type { HeaderField } from './mime.js';
import { parseReport, type InboundReport } from './reports.js';
import type { DistributionSettings } from './settings.js';
import { matchReturnAddress, verifyToken, type RecipientRef } from './tokens.js';
import type { DistributionStore } from './types.js';

export type DistributionRoute =
  | { kind: 'bounce' | 'unsubscribe'; ref: RecipientRef }
  | { kind: 'complaint'; domain: string }
  /** The local part has the shape of a token address but its MAC is wrong: reject with 550. */
  | { kind: 'forged'; reason: string }
  | { kind: 'none' };

export interface InboundResult {
  route: DistributionRoute['kind'];
  report?: InboundReport['kind'];
  outcomes: FeedbackOutcome[];
}

export class DistributionInbound {
  constructor(
    private readonly store: DistributionStore,
    private readonly recorder: FeedbackRecorder,
    private readonly secret: Buffer,
    private readonly settings: DistributionSettings,
  ) {}

  /** Creates the handler with the store's token secret. */
  static async create(
    store: DistributionStore,
    recorder: FeedbackRecorder,
    settings: DistributionSettings,
  ): Promise<DistributionInbound> {
    return new DistributionInbound(
      store,
      recorder,
      await store.getSecret('recipient-token'),
      settings,
    );
  }

  /** Decides whether an RCPT address is one of the distribution addresses of an owned domain. */
  async route(address: string): Promise<DistributionRoute> {
    const match = matchReturnAddress(this.secret, address, this.settings.returnAddresses);
    if (match.kind === 'none') {
      const at = address.lastIndexOf('@');
      const local = address.slice(0, at).toLowerCase();
      const domain = address.slice(at + 1).toLowerCase();
      if (
        local === this.settings.complaintLocalPart &&
        (await this.store.domainOwner(domain)) !== undefined
      ) {
        return { kind: 'complaint', domain };
      }
      return { kind: 'none' };
    }
    if ((await this.store.domainOwner(match.domain)) === undefined) return { kind: 'none' };
    if (match.kind === 'forged')
      return { kind: 'forged', reason: `invalid ${match.purpose} token` };
    return { kind: match.kind, ref: match.ref };
  }

  /** Processes a message accepted for a distribution address. */
  async receive(route: DistributionRoute, message: Buffer): Promise<InboundResult> {
    if (route.kind === 'unsubscribe') {
      const outcome = await this.recorder.unsubscribe(route.ref, 'unsubscribe by mail');
      return { route: route.kind, outcomes: [outcome] };
    }
    if (route.kind !== 'bounce' && route.kind !== 'complaint')
      return { route: route.kind, outcomes: [] };

    const report = parseReport(message);
    const outcomes: FeedbackOutcome[] = [];
    if (report.kind === 'arf') {
      const ref =
        route.kind === 'bounce'
          ? route.ref
          : this.refFromComplaint(report.originalMailFrom, report.originalHeaders);
      if (ref) outcomes.push(await this.recorder.complaint(ref, `ARF ${report.feedbackType}`));
    } else if (route.kind === 'bounce' && report.kind === 'dsn') {
      for (const recipient of report.recipients) {
        const outcome = await this.recorder.bounce(route.ref, classifyDsnRecipient(recipient));
        if (outcome) outcomes.push(outcome);
      }
    } else if (route.kind === 'bounce' && report.kind === 'plain') {
      const outcome = await this.recorder.bounce(
        route.ref,
        classifyText(`${report.subject}\n${report.text}`),
      );
      if (outcome) outcomes.push(outcome);
    }
    return { route: route.kind, report: report.kind, outcomes };
  }

  /**
   * Finds the recipient of a complaint: the VERP address in `Original-Mail-From`, or else the
   * unsubscribe token in the returned message's `List-Unsubscribe` field.
   */
  private refFromComplaint(
    originalMailFrom: string | undefined,
    headers: HeaderField[],
  ): RecipientRef | undefined {
    const candidates = [originalMailFrom, getHeader(headers, 'return-path')?.replace(/^<|>$/g, '')];
    for (const candidate of candidates) {
      if (!candidate) continue;
      const match = matchReturnAddress(this.secret, candidate, this.settings.returnAddresses);
      if (match.kind === 'bounce') return match.ref;
    }
    const listUnsubscribe = getHeader(headers, 'list-unsubscribe') ?? '';
    for (const token of listUnsubscribe.matchAll(/\/u\/([0-9a-z]+\.[0-9a-z]+\.[0-9a-f]+)/gi)) {
      const ref = verifyToken(this.secret, 'unsubscribe', token[1]!);
      if (ref) return ref;
    }
    return undefined;
  }
}
