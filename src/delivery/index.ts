/**
 * Outbound delivery: the verdict rules (`decide`), the SMTP client, connection reuse and
 * per-destination limits, and the workers that drain the queue.
 */
export {
  decide,
  decideDnsFailure,
  decideHostLookupFailure,
  parseReply,
  type DeliveryStage,
  type StepOutcome,
  type Verdict,
  type VerdictAction,
} from './decide.js';
export {
  ClientConnection,
  DeliveryError,
  openConnection,
  type ClientOptions,
  type MxTarget,
  type OutboundMessage,
  type StepReport,
  type TlsPolicy,
} from './client.js';
export { ConnectionPool, DestinationLimiter, Semaphore, type PoolOptions } from './pool.js';
export { groupTransactions, type Transaction } from './transactions.js';
export {
  startDeliveryWorkers,
  type DeliveryWorkerOptions,
  type DeliveryWorkers,
} from './worker.js';
