/**
 * Herald's SRS engine (Sender Rewriting Scheme), a pure library with no I/O of its own.
 *
 * Forwarding rewrites each envelope sender with `SrsRewriter.forward`, so the forwarded mail
 * passes SPF at the receiver. Mail that arrives for an address at the SRS domain is reversed at
 * RCPT time with `SrsRewriter.reverse`. A failure carries a typed reason and a message to log,
 * and the caller rejects the recipient with 550.
 *
 *   const srs = new SrsRewriter({ domain: 'srs.example.net', secrets: ['current', 'previous'] });
 *   srs.forward('info@club.example')  // { kind: 'rewritten', address: 'SRS0=…@srs.example.net' }
 *   srs.reverse('SRS0=…@srs.example.net')  // { ok: true, address: 'info@club.example' }
 *
 * Database mode: a sender whose SRS local part would exceed the 64 octets of RFC 5321 makes
 * `forward` return `{ kind: 'error', reason: 'too-long' }`. With a `tokenStore` configured,
 * `forwardAsync` stores such a sender under a token and returns a short address, and
 * `reverseAsync` looks the token up. Both fall back to the synchronous methods otherwise.
 *
 * The output matches postsrsd 1.x byte for byte with `alphabet: 'base64'`, with two deliberate
 * differences: a quoted local part makes the whole SRS local part quoted (postsrsd embeds the
 * quotes mid-address), and addresses split at the last `@` (postsrsd splits at the first).
 */
export {
  SrsRewriter,
  type ForwardResult,
  type ReverseFailure,
  type ReverseResult,
  type SrsOptions,
  type SrsSeparator,
} from './rewriter.js';
export {
  MemoryTokenStore,
  type MemoryTokenStoreOptions,
  type SrsTokenStore,
} from './token-store.js';
export type { HashAlphabet } from './hash.js';
export { MAX_LOCAL_PART_OCTETS, MAX_ADDRESS_OCTETS } from './address.js';
