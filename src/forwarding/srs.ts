/**
 * SRS wiring for forwarding. It picks the rewriter for a forwarded sender (the global SRS
 * domain, or the hosted domain's own SRS domain), keeps database-mode tokens in Herald's
 * store, and reverses mail that arrives for an SRS address. The scheme itself lives in
 * the SRS engine; this module only decides which rewriter applies and maps the results.
 */
import { SrsRewriter, type SrsOptions, type SrsTokenStore } from '../srs/index.js';
import type { Store } from '../store/types.js';

/** Default cap on stored SRS tokens; `putSrsToken` drops the rows closest to expiry past it. */
export const DEFAULT_MAX_SRS_TOKENS = 100_000;

/** The SRS token store on Herald's store, so every node can reverse every token. */
export class StoreTokenStore implements SrsTokenStore {
  constructor(
    private readonly store: Store,
    readonly maxRows: number = DEFAULT_MAX_SRS_TOKENS,
    private readonly now: () => Date = () => new Date(),
  ) {}

  put(token: string, original: string, expiresAt: Date): Promise<void> {
    return this.store.putSrsToken({ token, original, expiresAt }, this.maxRows);
  }

  get(token: string): Promise<string | undefined> {
    return this.store.getSrsToken(token, this.now());
  }

  /**
   * Deletes nothing itself: the store removes expired rows on every `putSrsToken`, and
   * `getSrsToken` never returns one, so there is nothing left for a separate purge to do.
   */
  purgeExpired(): Promise<number> {
    return Promise.resolve(0);
  }
}

/**
 * The SRS rewriters of a server: one for the global SRS domain and one per SRS domain that a
 * hosted domain sets for itself. All share the secrets and settings of the global one.
 */
export class SrsRouting {
  readonly default: SrsRewriter;
  private readonly perDomain = new Map<string, SrsRewriter>();

  constructor(private readonly options: SrsOptions & { domain: string }) {
    this.default = new SrsRewriter(options);
    this.perDomain.set(normaliseDomain(options.domain), this.default);
  }

  /** Returns the rewriter for an SRS domain, created on first use. */
  forDomain(srsDomain: string | null | undefined): SrsRewriter {
    if (!srsDomain) return this.default;
    const key = normaliseDomain(srsDomain);
    let rewriter = this.perDomain.get(key);
    if (!rewriter) {
      rewriter = new SrsRewriter({ ...this.options, domain: key });
      this.perDomain.set(key, rewriter);
    }
    return rewriter;
  }
}

function normaliseDomain(domain: string): string {
  return domain.toLowerCase().replace(/\.$/, '');
}

/** Either a full routing or a single rewriter that serves every hosted domain. */
export type SrsSource = SrsRouting | SrsRewriter;

function rewriterFor(source: SrsSource, srsDomain: string | null | undefined): SrsRewriter {
  return source instanceof SrsRouting ? source.forDomain(srsDomain) : source;
}

function defaultRewriter(source: SrsSource): SrsRewriter {
  return source instanceof SrsRouting ? source.default : source;
}

export type SenderRewrite =
  { ok: true; sender: string; rewritten: boolean } | { ok: false; reason: string; message: string };

/**
 * Rewrites the envelope sender of a message forwarded to `target`. The null sender stays null
 * (RFC 5321 section 4.5.5), and so do senders the rewriter leaves alone (the SRS domain itself,
 * excluded domains). `srsDomain` is the forwarding domain's own SRS domain, if it has one.
 * Senders too long for an SRS local part go through the token store when the rewriter has one.
 */
export async function rewriteSender(
  source: SrsSource,
  original: string,
  target: { recipient: string; srsDomain?: string | null },
): Promise<SenderRewrite> {
  if (original === '') return { ok: true, sender: '', rewritten: false };

  const rewriter = rewriterFor(source, target.srsDomain);
  const result = await rewriter.forwardAsync(original);
  switch (result.kind) {
    case 'rewritten':
      return { ok: true, sender: result.address, rewritten: true };
    case 'unchanged':
      return { ok: true, sender: result.address, rewritten: false };
    case 'error':
      return { ok: false, reason: result.reason, message: result.message };
  }
}

/** A rewriter without a domain, whose `isSrsAddress` checks only the SRS0/SRS1 tag. */
const TAG_CHECKER = new SrsRewriter({ secrets: ['tag-check-only'] });

export type SrsRecipientCheck =
  | { kind: 'not-srs' }
  | { kind: 'reversed'; original: string }
  | { kind: 'invalid'; reason: string; message: string };

/**
 * Checks a recipient against the SRS domains: `srsDomains` lists the domains whose SRS
 * addresses Herald reverses (the global one and those set by hosted domains). A recipient with
 * an SRS tag at one of them is reversed. A failure carries the engine's reason, which the
 * listener logs beside its 550 reply.
 */
export async function reverseRecipient(
  source: SrsSource,
  recipient: string,
  srsDomains: ReadonlySet<string>,
): Promise<SrsRecipientCheck> {
  const at = recipient.lastIndexOf('@');
  if (at < 0 || !srsDomains.has(normaliseDomain(recipient.slice(at + 1))))
    return { kind: 'not-srs' };

  if (!TAG_CHECKER.isSrsAddress(recipient)) return { kind: 'not-srs' };

  // Every rewriter shares the secrets, and reversing does not depend on the domain.
  const result = await defaultRewriter(source).reverseAsync(recipient);
  if (result.ok) return { kind: 'reversed', original: result.address };
  return { kind: 'invalid', reason: result.reason, message: result.message };
}
