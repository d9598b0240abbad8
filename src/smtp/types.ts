/** Types the SMTP listeners share with the server that starts them. */
import { signMessage, type SignatureOptions, type SignOptions } from '../dkim/index.js';
import type { MessageOrigin } from '../store/types.js';

/**
 * The active DKIM keys of each hosted domain, parsed once. The keyring of the domains module
 * implements it and reloads when keys change, so the listeners always see the current set.
 */
export interface DkimKeySource {
  /** Active keys of a domain (any case); empty when it has none. */
  signaturesFor(domain: string): readonly SignatureOptions[];
}

/**
 * Where DKIM signatures are computed: in process by default, or a worker pool of the DKIM
 * engine (`createSigningPool`), which moves RSA signing off the thread that serves SMTP.
 */
export interface MessageSigner {
  sign(message: Buffer, options: SignOptions): Promise<Buffer>;
}

/** Signs in the calling thread with `signMessage`. */
export const IN_PROCESS_SIGNER: MessageSigner = {
  sign: (message, options) => Promise.resolve(signMessage(message, options)),
};

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
