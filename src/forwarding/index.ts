/**
 * Forwarding: alias resolution, SRS rewriting of forwarded senders, reversal of mail for SRS
 * addresses, and the DMARC check on arrival with the alias's policy for messages that would
 * fail after forwarding. The SMTP listeners call these; nothing here speaks SMTP.
 */
export {
  resolveAlias,
  splitAddress,
  SUBADDRESS_SEPARATOR,
  type AliasLookup,
  type AliasMatch,
} from './aliases.js';
export {
  cacheTxtLookup,
  checkArrival,
  fromDomains,
  withNodeErrorCodes,
  type ArrivalCheck,
} from './authentication.js';
export {
  evaluateDmarc,
  failsAfterForwarding,
  findPolicy,
  formatDmarcResult,
  isAligned,
  organisationalDomain,
  parseDmarcRecord,
  type DmarcEvaluation,
  type DmarcPolicy,
  type DmarcRecord,
  type TxtLookup,
} from './dmarc.js';
export { rewriteFrom } from './rewrite-from.js';
export {
  BOUNCE_LOCAL_PART,
  RecipientRouter,
  type RecipientRoute,
  type RouterOptions,
} from './router.js';
export {
  DEFAULT_MAX_SRS_TOKENS,
  reverseRecipient,
  rewriteSender,
  SrsRouting,
  StoreTokenStore,
  type SenderRewrite,
  type SrsRecipientCheck,
  type SrsSource,
} from './srs.js';
