/**
 * Herald's shared knowledge of RFC 5322 messages: line endings, header fields as bytes,
 * folding, addresses, and the values of the fields a server adds. Every other module builds on
 * these functions and none of them does I/O.
 */
export { CrlfNormalizer, indexOfHeaderEnd, toCrlf, toSmtpLineEndings } from './line-endings.js';
export {
  fieldValue,
  getHeader,
  getHeaders,
  isWsp,
  parseHeaderFields,
  prependHeaderFields,
  rawFieldValue,
  splitMessage,
  trimWsp,
  unfold,
  type HeaderField,
  type MessageParts,
} from './header.js';
export { FOLD_WIDTH, formatHeaderField } from './fold.js';
export { domainOf, parseAddressList, type Mailbox } from './address.js';
export { createMessageId, formatDate, formatReceived, type ReceivedInfo } from './compose.js';
