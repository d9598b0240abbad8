export {
  DnsError,
  Resolver,
  createResolver,
  toDnsError,
  type DnsErrorCode,
  type MailResolver,
  type MxHost,
  type ResolverOptions,
} from './resolver.js';
