/**
 * Per-recipient tokens for unsubscribe links, unsubscribe mailto addresses and VERP return
 * paths. A token is `CAMPAIGN.SUBSCRIBER.MAC` with both ids in base 36 and the MAC the first
 * 80 bits of HMAC-SHA256 over the purpose and the ids, in lower-case hex. Lower case matters:
 * the token travels in local parts, which some receivers and forwarders lower-case. The
 * purpose separates the uses, so a bounce address cannot serve as an unsubscribe token.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export type TokenPurpose = 'unsubscribe' | 'bounce';

export interface RecipientRef {
  campaignId: number;
  /** 0 for a test send to an address that is not on the list. */
  subscriberId: number;
}

const MAC_HEX_LENGTH = 20;
const TOKEN = /^([0-9a-z]{1,11})\.([0-9a-z]{1,11})\.([0-9a-f]{20})$/;

/** Makes the token for a recipient. */
export function makeToken(secret: Buffer, purpose: TokenPurpose, ref: RecipientRef): string {
  const campaign = ref.campaignId.toString(36);
  const subscriber = ref.subscriberId.toString(36);
  return `${campaign}.${subscriber}.${mac(secret, purpose, campaign, subscriber)}`;
}

/** Checks a token (any case) and returns the recipient it names, or undefined when forged. */
export function verifyToken(
  secret: Buffer,
  purpose: TokenPurpose,
  token: string,
): RecipientRef | undefined {
  const match = TOKEN.exec(token.toLowerCase());
  if (!match) return undefined;
  const [, campaign, subscriber, given] = match as unknown as [string, string, string, string];
  const expected = mac(secret, purpose, campaign, subscriber);
  if (!timingSafeEqual(Buffer.from(given), Buffer.from(expected))) return undefined;

  const campaignId = parseInt(campaign, 36);
  const subscriberId = parseInt(subscriber, 36);
  if (!Number.isSafeInteger(campaignId) || !Number.isSafeInteger(subscriberId)) return undefined;
  return { campaignId, subscriberId };
}

function mac(secret: Buffer, purpose: TokenPurpose, campaign: string, subscriber: string): string {
  return createHmac('sha256', secret)
    .update(`${purpose}:${campaign}:${subscriber}`)
    .digest('hex')
    .slice(0, MAC_HEX_LENGTH);
}

/** Local parts of the addresses a sending domain uses for bounces and unsubscribe mail. */
export interface ReturnAddresses {
  bounceLocalPart: string;
  unsubscribeLocalPart: string;
}

export const DEFAULT_RETURN_ADDRESSES: ReturnAddresses = {
  bounceLocalPart: 'bounces',
  unsubscribeLocalPart: 'unsubscribe',
};

/** VERP return path: `bounces+TOKEN@domain`, unique per recipient (RFC 5321 reverse-path). */
export function verpAddress(
  secret: Buffer,
  ref: RecipientRef,
  domain: string,
  addresses: ReturnAddresses = DEFAULT_RETURN_ADDRESSES,
): string {
  return `${addresses.bounceLocalPart}+${makeToken(secret, 'bounce', ref)}@${domain}`;
}

/** Makes the mailto address of `List-Unsubscribe`: `unsubscribe+TOKEN@domain`. */
export function unsubscribeMailto(
  secret: Buffer,
  ref: RecipientRef,
  domain: string,
  addresses: ReturnAddresses = DEFAULT_RETURN_ADDRESSES,
): string {
  return `${addresses.unsubscribeLocalPart}+${makeToken(secret, 'unsubscribe', ref)}@${domain}`;
}

export type ReturnAddressMatch =
  | { kind: 'bounce' | 'unsubscribe'; ref: RecipientRef; domain: string }
  | { kind: 'forged'; purpose: TokenPurpose; domain: string }
  | { kind: 'none' };

/**
 * Recognises a VERP or unsubscribe address. `forged` means the local part has the shape of
 * one but the MAC does not verify; the SMTP layer rejects such recipients at RCPT.
 */
export function matchReturnAddress(
  secret: Buffer,
  address: string,
  addresses: ReturnAddresses = DEFAULT_RETURN_ADDRESSES,
): ReturnAddressMatch {
  const at = address.lastIndexOf('@');
  if (at < 0) return { kind: 'none' };
  const local = address.slice(0, at).toLowerCase();
  const domain = address.slice(at + 1).toLowerCase();
  const plus = local.indexOf('+');
  if (plus < 0) return { kind: 'none' };

  const base = local.slice(0, plus);
  const token = local.slice(plus + 1);
  let purpose: TokenPurpose;
  if (base === addresses.bounceLocalPart.toLowerCase()) purpose = 'bounce';
  else if (base === addresses.unsubscribeLocalPart.toLowerCase()) purpose = 'unsubscribe';
  else return { kind: 'none' };

  const ref = verifyToken(secret, purpose, token);
  if (!ref) return { kind: 'forged', purpose, domain };
  return { kind: purpose, ref, domain };
}
