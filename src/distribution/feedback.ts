/**
 * What the list learns after sending: bounces, complaints and unsubscribes, each applied to
 * one recipient of one campaign. A hard bounce marks the subscriber bounced and suppresses
 * the address. Soft bounces suppress once they reach the threshold. A complaint or an
 * unsubscribe suppresses at once. Suppression is per organisation, so the address receives
 * nothing from any list of that organisation afterwards.
 */
import type { Classification } from './classify.js';
import type { RecipientRef } from './tokens.js';
import type { DistributionStore, RecipientStatus, Subscriber, SubscriberStatus } from './types.js';

export type FeedbackKind = 'hard-bounce' | 'soft-bounce' | 'complaint' | 'unsubscribe';

export interface FeedbackOutcome {
  applied: boolean;
  kind: FeedbackKind;
  /** The address concerned, when the subscriber was found. */
  address?: string;
  subscriberId: number;
  campaignId: number;
  /** True when the address is now on the organisation's suppression list. */
  suppressed: boolean;
  detail: string;
}

export class FeedbackRecorder {
  constructor(
    private readonly store: DistributionStore,
    private readonly softBounceThreshold: number,
  ) {}

  /** Applies a classified bounce; an `ignore` verdict changes nothing. */
  async bounce(
    ref: RecipientRef,
    classification: Classification,
  ): Promise<FeedbackOutcome | undefined> {
    if (classification.verdict === 'ignore') return undefined;
    const detail = `${classification.rule}: ${classification.evidence}`.slice(0, 500);
    if (classification.verdict === 'hard') return this.apply(ref, 'hard-bounce', detail);
    return this.apply(ref, 'soft-bounce', detail);
  }

  complaint(ref: RecipientRef, detail: string): Promise<FeedbackOutcome> {
    return this.apply(ref, 'complaint', detail);
  }

  unsubscribe(ref: RecipientRef, detail: string): Promise<FeedbackOutcome> {
    return this.apply(ref, 'unsubscribe', detail);
  }

  private async apply(
    ref: RecipientRef,
    kind: FeedbackKind,
    detail: string,
  ): Promise<FeedbackOutcome> {
    const outcome: FeedbackOutcome = {
      applied: false,
      kind,
      subscriberId: ref.subscriberId,
      campaignId: ref.campaignId,
      suppressed: false,
      detail,
    };
    const found = await this.findSubscriber(ref);
    if (!found) return outcome;
    const { subscriber, organisationId } = found;
    outcome.address = subscriber.address;
    outcome.applied = true;

    let suppress = kind !== 'soft-bounce';
    if (kind === 'soft-bounce') {
      const count = await this.store.addSoftBounce(subscriber.id);
      suppress = count >= this.softBounceThreshold;
      outcome.detail = `${detail} (soft bounce ${count} of ${this.softBounceThreshold})`;
    }
    if (suppress) {
      await this.store.suppress({
        organisationId,
        address: subscriber.address,
        reason: kind,
        detail: outcome.detail,
      });
      await this.store.setSubscriberStatus(subscriber.id, SUBSCRIBER_STATUS[kind]);
      outcome.suppressed = true;
    }

    const recipient = await this.store.getRecipient(ref.campaignId, ref.subscriberId);
    if (recipient) {
      await this.store.setRecipientStatus(
        ref.campaignId,
        ref.subscriberId,
        RECIPIENT_STATUS[kind],
        outcome.detail,
      );
    }
    return outcome;
  }

  /** Finds the subscriber named by a token, when it belongs to the list of the token's campaign. */
  private async findSubscriber(
    ref: RecipientRef,
  ): Promise<{ subscriber: Subscriber; organisationId: number } | undefined> {
    if (ref.subscriberId === 0) return undefined;
    const [subscriber, campaign] = await Promise.all([
      this.store.getSubscriber(ref.subscriberId),
      this.store.getCampaign(ref.campaignId),
    ]);
    if (!subscriber || !campaign || campaign.listId !== subscriber.listId) return undefined;
    return { subscriber, organisationId: campaign.organisationId };
  }
}

const SUBSCRIBER_STATUS: Record<FeedbackKind, SubscriberStatus> = {
  'hard-bounce': 'bounced',
  'soft-bounce': 'bounced',
  complaint: 'complained',
  unsubscribe: 'unsubscribed',
};

const RECIPIENT_STATUS: Record<FeedbackKind, RecipientStatus> = {
  'hard-bounce': 'bounced',
  'soft-bounce': 'bounced',
  complaint: 'complained',
  unsubscribe: 'unsubscribed',
};
