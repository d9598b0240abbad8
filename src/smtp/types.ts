/** Types the SMTP listeners share with the server that starts them. */
import type { SignatureOptions } from '../dkim/index.js';
import type { MessageOrigin } from '../store/types.js';

/**
 * The active DKIM keys of each hosted domain, parsed once. The keyring of the domains module
 * implements it and reloads when keys change, so the listeners always see the current set.
 */
export interface DkimKeySource {
  /** Active keys of a domain (any case); empty when it has none. */
  signaturesFor(domain: string): readonly SignatureOptions[];
}

/** A message just committed to the queue. */
export interface EnqueuedMessage {
  messageId: string;
  origin: MessageOrigin;
  /** Queue entries created: one per recipient. */
  recipients: number;
}

/** Called after each message is committed, so delivery workers wake without polling. */
export type EnqueuedListener = (message: EnqueuedMessage) => void;

/** Certificate and key in PEM form. */
export interface TlsOptions {
  cert: Buffer;
  key: Buffer;
}
