/**
 * The DKIM keys Herald signs with, parsed once into `KeyObject`s: parsing a PEM key costs more
 * than an RSA signature, so the submission path must never read keys per message. The server
 * reloads the keyring when domains or keys change (API calls, SIGHUP, a periodic check that
 * catches changes made with the CLI or another node while the server runs).
 *
 * A key's PEM comes from the store, so every node on a shared database signs with keys that
 * another node created. Rows created before the store kept the PEM have only their key file.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';

import type { DkimKeyAlgorithm, Store } from '../store/types.js';

/** One signature to add: the shape `signMessage` takes in its `signatures` list. */
export interface DkimSigningKey {
  domain: string;
  selector: string;
  privateKey: KeyObject;
  algorithm: DkimKeyAlgorithm;
}

export interface KeyringLoadError {
  domain: string;
  selector: string;
  /** The key's file, which is read only when the store has no PEM for the key. */
  path: string;
  error: Error;
}

export class DkimKeyring {
  private keysByDomain = new Map<string, DkimSigningKey[]>();
  /** Fingerprint of the key rows last loaded, so `reloadIfChanged` skips unchanged sets. */
  private fingerprint = '';

  constructor(private readonly store: Store) {}

  /** Creates a keyring and loads every active key; keys that fail to load are in `errors`. */
  static async load(store: Store): Promise<{ keyring: DkimKeyring; errors: KeyringLoadError[] }> {
    const keyring = new DkimKeyring(store);
    const errors = await keyring.reload();
    return { keyring, errors };
  }

  /** Active keys of a domain (lower-cased), RSA first; empty when the domain is not hosted. */
  signaturesFor(domain: string): DkimSigningKey[] {
    return this.keysByDomain.get(domain.toLowerCase()) ?? [];
  }

  /** Hosted domains that have at least one active key. */
  domains(): string[] {
    return [...this.keysByDomain.keys()];
  }

  /**
   * Reads the active keys of every domain again and swaps them in at once. A key that neither
   * the store nor its file has, or that does not parse, is left out and reported, so one broken
   * domain does not stop the others from signing.
   */
  async reload(): Promise<KeyringLoadError[]> {
    const { rows, fingerprint } = await this.readRows();
    const next = new Map<string, DkimSigningKey[]>();
    const errors: KeyringLoadError[] = [];

    for (const row of rows) {
      try {
        const pem = (await this.store.getDkimPrivateKey(row.id)) ?? (await readFile(row.path));
        const privateKey = createPrivateKey(pem);
        const keys = next.get(row.domain) ?? [];
        keys.push({
          domain: row.domain,
          selector: row.selector,
          privateKey,
          algorithm: row.algorithm,
        });
        next.set(row.domain, keys);
      } catch (error) {
        errors.push({
          domain: row.domain,
          selector: row.selector,
          path: row.path,
          error: error as Error,
        });
      }
    }
    // RSA first: receivers that do not know Ed25519 (RFC 8463) still find a signature they verify.
    for (const keys of next.values()) keys.sort((a, b) => b.algorithm.localeCompare(a.algorithm));

    this.keysByDomain = next;
    this.fingerprint = fingerprint;
    return errors;
  }

  /** Reloads only when the set of active key rows changed since the last load. */
  async reloadIfChanged(): Promise<{ reloaded: boolean; errors: KeyringLoadError[] }> {
    const { fingerprint } = await this.readRows();
    if (fingerprint === this.fingerprint) return { reloaded: false, errors: [] };
    return { reloaded: true, errors: await this.reload() };
  }

  private async readRows() {
    const rows: {
      id: number;
      domain: string;
      selector: string;
      path: string;
      algorithm: DkimKeyAlgorithm;
    }[] = [];
    for (const domain of await this.store.listDomains()) {
      for (const key of await this.store.listDkimKeys(domain.id)) {
        if (key.status !== 'active') continue;
        rows.push({
          id: key.id,
          domain: domain.name.toLowerCase(),
          selector: key.selector,
          path: key.privateKeyPath,
          algorithm: key.algorithm,
        });
      }
    }
    const fingerprint = rows.map((row) => `${row.domain}/${row.selector}/${row.path}`).join('\n');
    return { rows, fingerprint };
  }
}
