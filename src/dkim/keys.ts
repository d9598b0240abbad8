/**
 * DKIM keys and their DNS records. Private keys are written as PKCS#8 PEM in a file created
 * with mode 0600, so the key is never readable by others, not even for a moment. Keys are read
 * from PKCS#8 or PKCS#1 PEM (what `opendkim-genkey` and `openssl genrsa` write) or, for Ed25519,
 * from the bare base64 seed that RFC 8463 and dkimpy use.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPair as generateKeyPairCallback,
  type KeyObject,
} from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { promisify } from 'node:util';

import { MIN_RSA_BITS, rawEd25519PublicKey } from './key-record.js';

const generate = promisify(generateKeyPairCallback);

/** The RSA key size used when none is given. */
export const DEFAULT_RSA_BITS = 2048;
/** The largest RSA key Herald generates (RFC 8301 section 3.2 asks verifiers to handle 4096). */
export const MAX_RSA_BITS = 4096;

export interface KeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
}

/** Generates an RSA key (1024 to 4096 bits, 2048 by default) or an Ed25519 key. */
export async function generateKeyPair(options: {
  algorithm: 'rsa' | 'ed25519';
  bits?: number;
}): Promise<KeyPair> {
  if (options.algorithm === 'ed25519') return generate('ed25519');
  if (options.algorithm !== 'rsa')
    throw new Error(`unknown key algorithm "${String(options.algorithm)}"; use rsa or ed25519`);
  const bits = options.bits ?? DEFAULT_RSA_BITS;
  if (!Number.isInteger(bits) || bits < MIN_RSA_BITS || bits > MAX_RSA_BITS) {
    throw new Error(`invalid RSA key size ${bits}; use ${MIN_RSA_BITS} to ${MAX_RSA_BITS} bits`);
  }
  return generate('rsa', { modulusLength: bits, publicExponent: 0x10001 });
}

/**
 * Writes `key` as PKCS#8 PEM to a new file with mode 0600. The file is created with that mode
 * (and `wx`, so an existing file is never overwritten), so there is no moment when it is wider.
 */
export async function writePrivateKey(path: string, key: KeyObject): Promise<void> {
  const pem = key.export({ format: 'pem', type: 'pkcs8' });
  const handle = await open(path, 'wx', 0o600);
  try {
    // The umask can only narrow the mode; chmod makes it exactly 0600 whatever the umask.
    await handle.chmod(0o600);
    await handle.writeFile(pem);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Reads a private key file; see `parsePrivateKey` for the formats. */
export async function readPrivateKey(path: string): Promise<KeyObject> {
  let text: Buffer;
  try {
    text = await readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new Error(`cannot read key file ${path}: ${code}`, { cause: error });
  }
  try {
    return parsePrivateKey(text);
  } catch (error) {
    throw new Error(`cannot read key file ${path}: ${(error as Error).message}`, { cause: error });
  }
}

/** The ASN.1 prefix of a PKCS#8 Ed25519 private key, before its 32-byte seed. */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/**
 * Parses a private key: PEM in PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE KEY`),
 * or a bare base64 Ed25519 seed of 32 bytes. Raises an error that names the problem.
 */
export function parsePrivateKey(input: Buffer | string): KeyObject {
  const text = input.toString().trim();
  if (!text.includes('-----BEGIN')) {
    const seed = /^[A-Za-z0-9+/]{43}=$/.test(text) ? Buffer.from(text, 'base64') : undefined;
    if (seed?.length !== 32) throw new Error('not a PEM private key or a base64 Ed25519 seed');
    return createPrivateKey({
      key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]),
      format: 'der',
      type: 'pkcs8',
    });
  }
  if (text.includes('ENCRYPTED'))
    throw new Error('the key is encrypted; DKIM keys must be stored unencrypted');
  let key: KeyObject;
  try {
    key = createPrivateKey(text);
  } catch {
    throw new Error('the PEM data is not a valid private key');
  }
  if (key.asymmetricKeyType !== 'rsa' && key.asymmetricKeyType !== 'ed25519') {
    throw new Error(
      `unsupported key type ${key.asymmetricKeyType ?? 'unknown'}; DKIM uses rsa or ed25519`,
    );
  }
  return key;
}

/** Returns the key record value to publish: `v=DKIM1; k=rsa; p=...` or `k=ed25519`. */
export function dkimRecordValue(key: KeyObject): string {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  if (publicKey.asymmetricKeyType === 'ed25519') {
    return `v=DKIM1; k=ed25519; p=${rawEd25519PublicKey(publicKey).toString('base64')}`;
  }
  if (publicKey.asymmetricKeyType !== 'rsa') throw new Error('DKIM keys are rsa or ed25519');
  const der = publicKey.export({ format: 'der', type: 'spki' });
  return `v=DKIM1; k=rsa; p=${der.toString('base64')}`;
}

/** The longest character-string in a TXT record (RFC 1035 section 3.3). */
const MAX_STRING = 255;
/** `opendkim-genkey` cuts the base64 of `p=` into pieces of this length. */
const KEY_PIECE = 250;

/**
 * Splits a record value into character-strings of at most 255 bytes the way `opendkim-genkey`
 * does: the tags before `p=` in one string, then `p=` with the first 250 characters of the key,
 * then 250 characters per string.
 */
export function splitTxtValue(value: string): string[] {
  const keyStart = value.indexOf('p=');
  const strings: string[] = [];
  if (keyStart > 0) strings.push(...splitEvery(value.slice(0, keyStart), MAX_STRING));
  const key = keyStart === -1 ? value : value.slice(keyStart + 2);
  const pieces = splitEvery(key, KEY_PIECE);
  if (keyStart !== -1) pieces[0] = `p=${pieces[0] ?? ''}`;
  strings.push(...pieces);
  return strings;
}

function splitEvery(text: string, size: number): string[] {
  const pieces: string[] = [];
  for (let index = 0; index < text.length; index += size)
    pieces.push(text.slice(index, index + size));
  return pieces.length === 0 ? [''] : pieces;
}

/**
 * Formats a BIND zone-file line for the key record, in the parenthesised multi-line form of
 * `opendkim-genkey`, with the owner name fully qualified.
 */
export function zoneFileRecord(selector: string, domain: string, value: string): string {
  const strings = splitTxtValue(value).map((piece) => `"${piece.replace(/(["\\])/g, '\\$1')}"`);
  const owner = `${selector}._domainkey.${domain.replace(/\.$/, '')}.`;
  return `${owner}\tIN\tTXT\t( ${strings.join('\n\t  ')} )  ; ----- DKIM key ${selector} for ${domain}\n`;
}
