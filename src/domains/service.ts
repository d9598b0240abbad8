/**
 * The management operations on hosted domains, their DKIM keys, aliases and submission
 * credentials. The CLI and the REST API both call these functions, so validation, key
 * generation and password hashing happen in one place whichever way an operator comes in.
 */
import type { KeyObject } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

import { dkimRecordValue, generateKeyPair, writePrivateKey } from '../dkim/index.js';
import type {
  Alias,
  Credential,
  DkimKeyRecord,
  DmarcForwardPolicy,
  Domain,
  NewDkimKey,
  Store,
} from '../store/types.js';

import {
  ConflictError,
  InvalidInputError,
  NotFoundError,
  normaliseDomain,
  normaliseTarget,
  parseAliasAddress,
} from './names.js';
import { hashPassword } from './password.js';

export interface ServiceContext {
  store: Store;
  /** Data directory; keys go under `DATA_DIR/keys/DOMAIN/`. */
  dataDir: string;
  /** Clock for key selectors, for tests. */
  now?: () => Date;
}

/** The two keys every domain gets: RSA for every receiver, Ed25519 (RFC 8463) beside it. */
const KEY_KINDS = [
  { algorithm: 'rsa', suffix: 'r', record: 'rsa-sha256', bits: 2048 },
  { algorithm: 'ed25519', suffix: 'e', record: 'ed25519-sha256', bits: undefined },
] as const;

/** Directory of a domain's PEM files. */
export function keyDirectory(dataDir: string, domain: string): string {
  return join(dataDir, 'keys', domain);
}

/** Dated selector such as `h20261203r`: the date records when the key was made, for rotation. */
export function keySelector(date: Date, suffix: string): string {
  const stamp = date.toISOString().slice(0, 10).replaceAll('-', '');
  return `h${stamp}${suffix}`;
}

/**
 * Writes a new private key to its file (mode 0600) and adds the key's row with the PEM, so
 * that a node with another data directory on the same database signs with it too.
 */
export async function saveDkimKey(
  context: ServiceContext,
  key: Omit<NewDkimKey, 'privateKeyPem'>,
  privateKey: KeyObject,
): Promise<DkimKeyRecord> {
  await writePrivateKey(key.privateKeyPath, privateKey);
  const privateKeyPem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  return context.store.addDkimKey({ ...key, privateKeyPem });
}

/**
 * Adds a hosted domain and generates its RSA-2048 and Ed25519 keys, stored in the database and
 * written 0600 under the data directory. When key generation fails the domain row is removed again, so a domain never
 * exists without keys.
 */
export async function addDomain(
  context: ServiceContext,
  name: string,
  options: { srsDomain?: string | null } = {},
): Promise<{ domain: Domain; keys: DkimKeyRecord[] }> {
  const domainName = normaliseDomain(name);
  const srsDomain = options.srsDomain ? normaliseDomain(options.srsDomain) : null;
  if (await context.store.getDomain(domainName)) {
    throw new ConflictError(`domain ${domainName} exists already`);
  }

  const domain = await context.store.addDomain(domainName, { srsDomain });
  try {
    const keys = await createKeys(context, domain);
    return { domain, keys };
  } catch (error) {
    await context.store.removeDomain(domainName);
    throw error;
  }
}

async function createKeys(context: ServiceContext, domain: Domain): Promise<DkimKeyRecord[]> {
  const directory = keyDirectory(context.dataDir, domain.name);
  await mkdir(directory, { recursive: true, mode: 0o700 });
  const date = (context.now ?? (() => new Date()))();

  const records: DkimKeyRecord[] = [];
  for (const kind of KEY_KINDS) {
    const selector = keySelector(date, kind.suffix);
    const privateKeyPath = join(directory, `${selector}.pem`);
    const pair = await generateKeyPair({ algorithm: kind.algorithm, bits: kind.bits });
    records.push(
      await saveDkimKey(
        context,
        {
          domainId: domain.id,
          selector,
          algorithm: kind.record,
          privateKeyPath,
          publicRecord: dkimRecordValue(pair.publicKey),
          status: 'active',
        },
        pair.privateKey,
      ),
    );
  }
  return records;
}

export async function listDomains(context: ServiceContext): Promise<Domain[]> {
  return context.store.listDomains();
}

/** Returns a domain with its keys, aliases and credentials, or throws `NotFoundError`. */
export async function getDomainDetails(context: ServiceContext, name: string) {
  const domain = await requireDomain(context, name);
  const [keys, aliases, credentials] = await Promise.all([
    context.store.listDkimKeys(domain.id),
    context.store.listAliases(domain.id),
    context.store.listCredentials(domain.id),
  ]);
  return { domain, keys, aliases, credentials: credentials.map(publicCredential) };
}

/**
 * Removes a domain, its rows with the stored private keys (the store cascades) and its key files
 * under this data directory. Key files that other nodes wrote stay on their machines.
 */
export async function removeDomain(context: ServiceContext, name: string): Promise<void> {
  const domain = await requireDomain(context, name);
  await context.store.removeDomain(domain.name);
  await rm(keyDirectory(context.dataDir, domain.name), { recursive: true, force: true });
}

export interface AliasInput {
  /** `local@domain` or `*@domain` for the catch-all. */
  address: string;
  targets: string[];
  enabled?: boolean;
  dmarcPolicy?: DmarcForwardPolicy;
  /** Replace an alias that exists already instead of failing. */
  replace?: boolean;
}

const DMARC_POLICIES: readonly DmarcForwardPolicy[] = ['forward', 'rewrite-from', 'reject'];

export async function addAlias(context: ServiceContext, input: AliasInput): Promise<Alias> {
  const { localPart, domain: domainName } = parseAliasAddress(input.address);
  const domain = await requireDomain(context, domainName);
  if (input.targets.length === 0) {
    throw new InvalidInputError(`alias ${input.address} needs at least one target`);
  }
  const targets = [...new Set(input.targets.map(normaliseTarget))];
  const dmarcPolicy = input.dmarcPolicy ?? 'rewrite-from';
  if (!DMARC_POLICIES.includes(dmarcPolicy)) {
    throw new InvalidInputError(
      `invalid DMARC policy ${JSON.stringify(dmarcPolicy)}: expected ${DMARC_POLICIES.join(', ')}`,
    );
  }

  const existing = await context.store.getAlias(domain.id, localPart);
  if (existing && !input.replace) {
    throw new ConflictError(`alias ${localPart}@${domain.name} exists already`);
  }
  // NOTE: the store has no update, so a replacement is a remove and an add; for the moment
  // between them the address gets 550 at RCPT.
  if (existing) await context.store.removeAlias(domain.id, localPart);
  return context.store.addAlias({
    domainId: domain.id,
    localPart,
    targets,
    enabled: input.enabled ?? true,
    dmarcPolicy,
  });
}

export async function listAliases(context: ServiceContext, domainName: string): Promise<Alias[]> {
  const domain = await requireDomain(context, domainName);
  return context.store.listAliases(domain.id);
}

export async function removeAlias(context: ServiceContext, address: string): Promise<void> {
  const { localPart, domain: domainName } = parseAliasAddress(address);
  const domain = await requireDomain(context, domainName);
  if (!(await context.store.removeAlias(domain.id, localPart))) {
    throw new NotFoundError(`alias ${localPart}@${domain.name} not found`);
  }
}

/** A credential without its hash, for listings and API responses. */
export type PublicCredential = Omit<Credential, 'passwordHash'> & { domain?: string };

function publicCredential(credential: Credential): PublicCredential {
  const { passwordHash: _hash, ...rest } = credential;
  return rest;
}

/**
 * Adds a submission credential. The password is hashed with scrypt here and never stored or
 * returned in clear. The domain defaults to the domain part of a username that is an address.
 */
export async function addCredential(
  context: ServiceContext,
  input: { username: string; password: string; domain?: string },
): Promise<PublicCredential> {
  const username = input.username.trim();
  if (!/^[\x21-\x7e]{1,255}$/.test(username)) {
    throw new InvalidInputError(`invalid username ${JSON.stringify(input.username)}`);
  }
  if (input.password.length < 8) {
    throw new InvalidInputError('the password must be at least 8 characters');
  }
  const domainName = input.domain ?? username.slice(username.lastIndexOf('@') + 1);
  if (!input.domain && !username.includes('@')) {
    throw new InvalidInputError(`username ${username} is not an address: give the domain`);
  }
  const domain = await requireDomain(context, domainName);
  if (await context.store.getCredential(username)) {
    throw new ConflictError(`credential ${username} exists already`);
  }

  const passwordHash = await hashPassword(input.password);
  const credential = await context.store.addCredential({
    domainId: domain.id,
    username,
    passwordHash,
  });
  return { ...publicCredential(credential), domain: domain.name };
}

export async function listCredentials(
  context: ServiceContext,
  domainName: string,
): Promise<PublicCredential[]> {
  const domain = await requireDomain(context, domainName);
  const credentials = await context.store.listCredentials(domain.id);
  return credentials.map((credential) => ({
    ...publicCredential(credential),
    domain: domain.name,
  }));
}

export async function removeCredential(context: ServiceContext, username: string): Promise<void> {
  if (!(await context.store.removeCredential(username.trim()))) {
    throw new NotFoundError(`credential ${username} not found`);
  }
}

async function requireDomain(context: ServiceContext, name: string): Promise<Domain> {
  const domainName = normaliseDomain(name);
  const domain = await context.store.getDomain(domainName);
  if (!domain) throw new NotFoundError(`domain ${domainName} not found`);
  return domain;
}

export { ConflictError, InvalidInputError, NotFoundError } from './names.js';
