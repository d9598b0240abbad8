/**
 * Guided DKIM key rotation and delegated DKIM.
 *
 * Rotation runs in steps that survive restarts, because each step is a state in the store
 * (key status) or in `DATA_DIR/keys/DOMAIN/rotation.json` (retirement times):
 *
 *   1. `startRotation` creates a new RSA and a new Ed25519 key under new selectors, status
 *      `pending`: they are shown to the client to publish and do not sign yet.
 *   2. `advanceRotation` checks DNS. Once every pending selector serves its key correctly, the
 *      pending keys become `active` and the keys they replace become `retired`.
 *   3. Retired keys stay published for a grace period (7 days by default) so that messages
 *      signed just before the switch still verify; after it the client is told the records
 *      can be removed, and `confirmRemoval` forgets them.
 *
 * Delegated DKIM: the client publishes, once, a CNAME for each of four fixed selector names
 * (two slots per algorithm) pointing into a zone the provider runs. Rotation then alternates
 * between the slots and only the provider's zone changes, so no client action is needed.
 *
 * NOTE: rotation.json is kept per data directory, so nodes on a shared database each keep their
 * own retirement times and delegation zone. Only the keys and their status are shared.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { dkimRecordValue, generateKeyPair } from '../dkim/index.js';
import {
  checkRecord,
  type CheckLookups,
  type CheckTarget,
  type ExpectedRecord,
  type RecordCheck,
} from '../dns/check.js';
import type { DkimKeyAlgorithm, DkimKeyRecord, Domain } from '../store/types.js';

import type { ManagementContext } from './context.js';
import { ConflictError, InvalidInputError, NotFoundError, normaliseDomain } from './names.js';
import { domainRecords } from './records.js';
import { keyDirectory, keySelector, saveDkimKey } from './service.js';

/** How long a retired key stays published after the switch, by default. */
export const DEFAULT_GRACE_DAYS = 7;
const DAY_MS = 24 * 60 * 60 * 1000;

const KINDS: readonly {
  algorithm: DkimKeyAlgorithm;
  generate: 'rsa' | 'ed25519';
  suffix: string;
}[] = [
  { algorithm: 'rsa-sha256', generate: 'rsa', suffix: 'r' },
  { algorithm: 'ed25519-sha256', generate: 'ed25519', suffix: 'e' },
];

/** Fixed selector names of delegated DKIM: two slots per algorithm, used in turn. */
const DELEGATED_SLOTS = ['hd1', 'hd2'] as const;

interface RotationState {
  /** Key id -> ISO time the key was retired. */
  retiredAt: Record<string, string>;
  /** Ids of retired keys whose records are gone from DNS (confirmed, or a slot reused). */
  removed: number[];
  /** The provider's zone for delegated DKIM, when enabled. */
  delegationZone?: string;
}

export interface RotationOptions {
  graceDays?: number;
  now?: () => Date;
}

export interface RetiredKey {
  selector: string;
  retiredAt: Date;
  /** When the client may remove the record. */
  removableAt: Date;
  removable: boolean;
}

export interface RotationStatus {
  domain: string;
  /** `idle`: nothing to do; `waiting-for-dns`: pending keys are not served yet; `grace`:
   * retired keys must stay published; `removable`: some retired record can be removed. */
  stage: 'idle' | 'waiting-for-dns' | 'grace' | 'removable';
  active: DkimKeyRecord[];
  pending: { key: DkimKeyRecord; check?: RecordCheck }[];
  retired: (RetiredKey & { key: DkimKeyRecord })[];
  delegationZone?: string;
  /** A sentence for the client about what happens next. */
  message: string;
}

async function requireDomain(context: ManagementContext, name: string): Promise<Domain> {
  const domain = await context.store.getDomain(normaliseDomain(name));
  if (!domain) throw new NotFoundError(`domain ${normaliseDomain(name)} not found`);
  return domain;
}

function statePath(context: ManagementContext, domain: string): string {
  return join(keyDirectory(context.dataDir, domain), 'rotation.json');
}

async function readState(context: ManagementContext, domain: string): Promise<RotationState> {
  try {
    const parsed = JSON.parse(await readFile(statePath(context, domain), 'utf8')) as RotationState;
    return { ...parsed, retiredAt: parsed.retiredAt ?? {}, removed: parsed.removed ?? [] };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { retiredAt: {}, removed: [] };
    throw error;
  }
}

/** Writes the state through a temporary file and a rename, so a crash leaves the old or new. */
async function writeState(
  context: ManagementContext,
  domain: string,
  state: RotationState,
): Promise<void> {
  const path = statePath(context, domain);
  // A node other than the one that added the domain may have no key directory for it yet.
  await mkdir(keyDirectory(context.dataDir, domain), { recursive: true, mode: 0o700 });
  await writeFile(`${path}.tmp`, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  await rename(`${path}.tmp`, path);
}

/**
 * Starts a rotation: creates a pending RSA-2048 and Ed25519 key under new selectors (dated, or
 * the free delegated slot) and returns the status, whose pending keys the client publishes.
 */
export async function startRotation(
  context: ManagementContext,
  domainName: string,
  options: RotationOptions = {},
): Promise<RotationStatus> {
  const domain = await requireDomain(context, domainName);
  const keys = await context.store.listDkimKeys(domain.id);
  if (keys.some((key) => key.status === 'pending')) {
    throw new ConflictError(`a key rotation of ${domain.name} is already waiting for DNS`);
  }
  const state = await readState(context, domain.name);
  const now = (options.now ?? context.now ?? (() => new Date()))();
  const used = new Set(keys.map((key) => key.selector));

  for (const kind of KINDS) {
    const selector = state.delegationZone
      ? freeSlot(keys, kind)
      : uniqueSelector(keySelector(now, kind.suffix), used);
    await createPendingKey(context, domain, kind, selector);
    // NOTE: reusing a delegated slot replaces its retired key in the provider's zone at once,
    // so a third rotation within the grace period cuts that key's grace short.
    for (const old of keys) {
      if (old.selector === selector && !state.removed.includes(old.id)) state.removed.push(old.id);
    }
  }
  await writeState(context, domain.name, state);
  return rotationStatus(context, domain.name, options);
}

/** The delegated slot of this algorithm that no active key uses. */
function freeSlot(keys: DkimKeyRecord[], kind: (typeof KINDS)[number]): string {
  const active = keys.filter((key) => key.algorithm === kind.algorithm && key.status === 'active');
  const slots = DELEGATED_SLOTS.map((slot) => `${slot}${kind.suffix}`);
  const free = slots.find((slot) => !active.some((key) => key.selector === slot));
  // Rotation activates one slot and retires the other, so one slot is always free.
  return free ?? slots[0]!;
}

function uniqueSelector(base: string, used: Set<string>): string {
  if (!used.has(base)) return base;
  for (let index = 2; ; index++) {
    if (!used.has(`${base}${index}`)) return `${base}${index}`;
  }
}

async function createPendingKey(
  context: ManagementContext,
  domain: Domain,
  kind: (typeof KINDS)[number],
  selector: string,
): Promise<DkimKeyRecord> {
  const directory = keyDirectory(context.dataDir, domain.name);
  await mkdir(directory, { recursive: true, mode: 0o700 });
  const pair = await generateKeyPair({
    algorithm: kind.generate,
    ...(kind.generate === 'rsa' ? { bits: 2048 } : {}),
  });
  // A delegated slot is reused, so its file name carries the time to keep old keys apart.
  const privateKeyPath = join(directory, `${selector}-${Date.now().toString(36)}.pem`);
  return saveDkimKey(
    context,
    {
      domainId: domain.id,
      selector,
      algorithm: kind.algorithm,
      privateKeyPath,
      publicRecord: dkimRecordValue(pair.publicKey),
      status: 'pending',
    },
    pair.privateKey,
  );
}

/**
 * Checks the pending selectors in DNS and switches signing to them once all of them serve
 * their key without an error. The status it returns lists the retired keys that can be removed.
 */
export async function advanceRotation(
  context: ManagementContext,
  lookups: CheckLookups,
  domainName: string,
  options: RotationOptions = {},
): Promise<RotationStatus> {
  const domain = await requireDomain(context, domainName);
  const keys = await context.store.listDkimKeys(domain.id);
  const pending = keys.filter((key) => key.status === 'pending');
  const checks = new Map<number, RecordCheck>();
  for (const key of pending) {
    checks.set(key.id, await checkKey(lookups, domain.name, key));
  }
  const served = [...checks.values()].every(
    (check) => check.status === 'ok' || check.status === 'warning',
  );

  if (pending.length > 0 && served) {
    const state = await readState(context, domain.name);
    const now = (options.now ?? context.now ?? (() => new Date()))();
    for (const key of pending) {
      for (const old of keys) {
        if (old.status === 'active' && old.algorithm === key.algorithm) {
          await context.store.setDkimKeyStatus(old.id, 'retired');
          state.retiredAt[String(old.id)] = now.toISOString();
        }
      }
      await context.store.setDkimKeyStatus(key.id, 'active');
    }
    await writeState(context, domain.name, state);
    return rotationStatus(context, domain.name, options);
  }
  return rotationStatus(context, domain.name, options, checks);
}

function checkKey(lookups: CheckLookups, domain: string, key: DkimKeyRecord): Promise<RecordCheck> {
  return checkRecord(
    lookups,
    {
      purpose: `DKIM key ${key.selector}`,
      name: `${key.selector}._domainkey.${domain}`,
      type: 'TXT',
      value: key.publicRecord,
    },
    domain,
    [],
  );
}

/** Returns the state of the domain's rotation, without looking at DNS. */
export async function rotationStatus(
  context: ManagementContext,
  domainName: string,
  options: RotationOptions = {},
  checks = new Map<number, RecordCheck>(),
): Promise<RotationStatus> {
  const domain = await requireDomain(context, domainName);
  const keys = await context.store.listDkimKeys(domain.id);
  const state = await readState(context, domain.name);
  const now = (options.now ?? context.now ?? (() => new Date()))();
  const graceMs = (options.graceDays ?? DEFAULT_GRACE_DAYS) * DAY_MS;

  const retired = keys
    .filter((key) => key.status === 'retired' && !state.removed.includes(key.id))
    .map((key) => {
      const retiredAt = new Date(state.retiredAt[String(key.id)] ?? key.createdAt);
      const removableAt = new Date(retiredAt.getTime() + graceMs);
      return { key, selector: key.selector, retiredAt, removableAt, removable: now >= removableAt };
    });
  const pending = keys
    .filter((key) => key.status === 'pending')
    .map((key) => ({ key, ...(checks.has(key.id) ? { check: checks.get(key.id) } : {}) }));
  const active = keys.filter((key) => key.status === 'active');

  let stage: RotationStatus['stage'] = 'idle';
  let message = 'Signing uses the active keys; start a rotation to replace them.';
  if (pending.length > 0) {
    stage = 'waiting-for-dns';
    message = state.delegationZone
      ? `The new keys are published in ${state.delegationZone}; signing switches once DNS serves them.`
      : 'Publish the new records shown; signing switches to them as soon as DNS serves them.';
  } else if (retired.some((entry) => entry.removable)) {
    stage = 'removable';
    message = `The old records (${retired
      .filter((entry) => entry.removable)
      .map((entry) => entry.selector)
      .join(', ')}) can now be removed from DNS.`;
  } else if (retired.length > 0) {
    stage = 'grace';
    const until = retired
      .map((entry) => entry.removableAt.toISOString().slice(0, 10))
      .sort()
      .at(-1);
    message = `Signing uses the new keys. Keep the old records published until ${until}, so mail signed before the switch still verifies.`;
  }
  return {
    domain: domain.name,
    stage,
    active,
    pending,
    retired,
    ...(state.delegationZone ? { delegationZone: state.delegationZone } : {}),
    message,
  };
}

/** Records that the client removed a retired key's record; Herald stops listing it. */
export async function confirmRemoval(
  context: ManagementContext,
  domainName: string,
  selector: string,
  options: RotationOptions = {},
): Promise<RotationStatus> {
  const domain = await requireDomain(context, domainName);
  const status = await rotationStatus(context, domain.name, options);
  const entry = status.retired.find((retired) => retired.selector === selector);
  if (!entry) throw new NotFoundError(`no retired key ${selector} of ${domain.name}`);
  if (!entry.removable) {
    throw new InvalidInputError(
      `key ${selector} must stay published until ${entry.removableAt.toISOString()}`,
    );
  }
  const state = await readState(context, domain.name);
  state.removed.push(entry.key.id);
  await writeState(context, domain.name, state);
  return rotationStatus(context, domain.name, options);
}

/**
 * Switches a domain to delegated DKIM under `zone` (a zone the provider runs, such as
 * `dkim.provider.example`) and starts a rotation into the first slots, so the current dated
 * keys are replaced by slot keys the provider publishes.
 */
export async function enableDelegation(
  context: ManagementContext,
  domainName: string,
  zone: string,
  options: RotationOptions = {},
): Promise<RotationStatus> {
  const domain = await requireDomain(context, domainName);
  const state = await readState(context, domain.name);
  state.delegationZone = normaliseDomain(zone);
  await writeState(context, domain.name, state);
  return startRotation(context, domain.name, options);
}

/** Name in the provider's zone that a delegated selector's CNAME points at. */
export function delegatedTarget(selector: string, domain: string, zone: string): string {
  return `${selector}.${domain}.${zone}`;
}

/** The CNAME records the client publishes once for delegated DKIM. */
export function delegationCnames(domain: string, zone: string) {
  return DELEGATED_SLOTS.flatMap((slot) =>
    KINDS.map((kind) => {
      const selector = `${slot}${kind.suffix}`;
      const name = `${selector}._domainkey.${domain}`;
      const target = delegatedTarget(selector, domain, zone);
      return {
        purpose: `Delegated DKIM selector ${selector}`,
        name,
        type: 'CNAME' as const,
        value: target,
        zoneLine: `${name}. IN CNAME ${target}.`,
      };
    }),
  );
}

/** The TXT records the provider publishes in its zone: every key not yet removed. */
export async function delegationZoneRecords(
  context: ManagementContext,
  domainName: string,
): Promise<{ name: string; value: string; zoneLine: string }[]> {
  const domain = await requireDomain(context, domainName);
  const state = await readState(context, domain.name);
  if (!state.delegationZone) return [];
  const keys = await context.store.listDkimKeys(domain.id);
  const zone = state.delegationZone;
  return newestPerSelector(keys, state)
    .filter((key) => DELEGATED_SLOTS.some((slot) => key.selector.startsWith(slot)))
    .map((key) => {
      const name = delegatedTarget(key.selector, domain.name, zone);
      return { name, value: key.publicRecord, zoneLine: `${name}. IN TXT "${key.publicRecord}"` };
    });
}

/**
 * Builds what the setup checker should find for a domain: the records `herald domain show` lists
 * (removed keys left out) and, with delegated DKIM, the selector CNAMEs.
 */
export async function domainCheckTarget(
  context: ManagementContext,
  domainName: string,
  sendingAddresses: string[] = [],
): Promise<CheckTarget> {
  const domain = await requireDomain(context, domainName);
  const state = await readState(context, domain.name);
  const keys = newestPerSelector(await context.store.listDkimKeys(domain.id), state);
  const records: ExpectedRecord[] = domainRecords(domain, keys, context).map((record) => ({
    purpose: record.purpose,
    name: record.name,
    type: record.type,
    value: record.value,
  }));
  if (state.delegationZone) {
    records.push(...delegationCnames(domain.name, state.delegationZone));
  }
  return { domain: domain.name, hostname: context.hostname, records, sendingAddresses };
}

/**
 * The keys that DNS should serve: per selector the newest key (a delegated slot is reused, and
 * its new key replaces the old one in the provider's zone), without the removed ones.
 */
function newestPerSelector(keys: DkimKeyRecord[], state: RotationState): DkimKeyRecord[] {
  const newest = new Map<string, DkimKeyRecord>();
  for (const key of keys) {
    const current = newest.get(key.selector);
    if (!current || key.id > current.id) newest.set(key.selector, key);
  }
  return [...newest.values()].filter((key) => !state.removed.includes(key.id));
}
