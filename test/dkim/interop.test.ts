/**
 * Interop with the real peers: every corpus message signed by Herald verifies with OpenDKIM
 * (`opendkim -t` with TestPublicKeys) and with dkimpy, and every message signed by dkimpy
 * verifies with Herald, for both canonicalizations and both algorithms.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';

import {
  createZoneLookup,
  parseZoneFile,
  signMessage,
  verifyMessage,
} from '../../src/dkim/index.js';
import type { CanonicalizationPair } from '../../src/dkim/index.js';
import {
  createTestKeys,
  createWorkspace,
  dkimpyKey,
  largeMessage,
  loadCorpus,
  opendkimPassed,
  opendkimVerify,
  runDkimpy,
  type CorpusMessage,
  type DkimpyJob,
  type TestKey,
  type Workspace,
} from './helpers.js';

const CANONICALIZATIONS: CanonicalizationPair[] = ['relaxed/relaxed', 'simple/simple'];

/**
 * Where `opendkim -t` (OpenDKIM 2.11) cannot verify a correct signature, and fails the same way
 * on dkimpy's signature of the same message, which the test checks. Test mode rebuilds each
 * header field as `name: value`, so a field whose colon is not followed by exactly one space
 * changes under simple header canonicalization. It also mishandles relaxed bodies whose last
 * line has no CRLF: it reports "message not signed", or fails when that line ends in WSP.
 */
const OPENDKIM_TEST_MODE_QUIRKS = new Set([
  'tabs-in-headers.eml simple/simple',
  'empty-header-values.eml simple/simple',
  'no-final-crlf.eml relaxed/relaxed',
  'single-character-body.eml relaxed/relaxed',
  'no-final-crlf-trailing-space.eml relaxed/relaxed',
  'body-only-whitespace.eml relaxed/relaxed',
]);

/** The 10 MB message, which costs dkimpy seconds each time, in two of the four combinations. */
const LARGE_MESSAGE = 'generated-10mb.eml';
const LARGE_COMBINATIONS = new Set(['rsa-sha256 relaxed/relaxed', 'ed25519-sha256 simple/simple']);

function includeLarge(message: CorpusMessage, key: TestKey, canonicalization: string): boolean {
  return (
    message.name !== LARGE_MESSAGE || LARGE_COMBINATIONS.has(`${key.algorithm} ${canonicalization}`)
  );
}

/** dkimpy rejects the obsolete syntax of RFC 5322 section 4.5 (WSP before a field's colon). */
const DKIMPY_REJECTS = new Set(['space-before-colon.eml']);

let keys: TestKey[];
let workspace: Workspace;
let corpus: CorpusMessage[];
let lookupTxt: (name: string) => Promise<string[][]>;

interface SignedFile {
  label: string;
  path: string;
  message: CorpusMessage;
  key: TestKey;
  canonicalization: CanonicalizationPair;
}

/** Signs every corpus message with each key and canonicalization and writes the results. */
async function signCorpusWithHerald(): Promise<SignedFile[]> {
  const files: SignedFile[] = [];
  for (const key of keys) {
    for (const canonicalization of CANONICALIZATIONS) {
      for (const message of corpus.filter((entry) => includeLarge(entry, key, canonicalization))) {
        const signed = signMessage(message.bytes, {
          signatures: [
            {
              domain: key.domain,
              selector: key.selector,
              privateKey: key.privateKey,
              canonicalization,
            },
          ],
        });
        const label = `${message.name} ${key.algorithm} ${canonicalization}`;
        const path = join(
          workspace.directory,
          `herald-${key.selector}-${canonicalization.replace('/', '-')}-${message.name}`,
        );
        await writeFile(path, signed);
        files.push({ label, path, message, key, canonicalization });
      }
    }
  }
  return files;
}

beforeAll(async () => {
  const created = await createTestKeys();
  keys = [created.rsa, created.ed25519];
  workspace = await createWorkspace(keys);
  corpus = [...(await loadCorpus()), { name: LARGE_MESSAGE, bytes: largeMessage(10) }];
  lookupTxt = createZoneLookup(parseZoneFile(await readFile(workspace.zoneFile, 'utf8')));
});

describe('Herald-signed corpus', () => {
  let files: SignedFile[];

  beforeAll(async () => {
    files = await signCorpusWithHerald();
  });

  it('has at least 40 messages', () => {
    expect(corpus.length).toBeGreaterThanOrEqual(40);
  });

  it('verifies with OpenDKIM', async () => {
    const checked = files.filter((file) => !isOpendkimQuirk(file));
    const reports = await opendkimVerify(
      workspace,
      checked.map((file) => file.path),
    );
    const failures = checked
      .filter((file) => !opendkimPassed(reports.get(file.path) ?? ''))
      .map((file) => `${file.label}: ${reports.get(file.path) || 'no report'}`);
    expect(failures).toEqual([]);
    expect(checked.length).toBeGreaterThan(160);
    expect(checked.some((file) => file.message.name === LARGE_MESSAGE)).toBe(true);
  });

  it('meets OpenDKIM test-mode quirks as dkimpy does', async () => {
    const quirks = files.filter(isOpendkimQuirk);
    expect(quirks.length).toBe(OPENDKIM_TEST_MODE_QUIRKS.size * keys.length);
    const jobs: DkimpyJob[] = quirks.map((file) => ({
      op: 'sign',
      path: join(workspace.directory, `source-${file.message.name}`),
      selector: file.key.selector,
      domain: file.key.domain,
      key: dkimpyKey(file.key),
      algorithm: file.key.algorithm,
      canonicalization: file.canonicalization,
    }));
    for (const file of quirks)
      await writeFile(join(workspace.directory, `source-${file.message.name}`), file.message.bytes);
    const signatures = await runDkimpy(workspace, jobs);
    const dkimpyPaths = await Promise.all(
      quirks.map(async (file, index) => {
        const path = `${file.path}.dkimpy`;
        await writeFile(
          path,
          Buffer.concat([Buffer.from(signatures[index]?.signature ?? ''), file.message.bytes]),
        );
        return path;
      }),
    );
    const reports = await opendkimVerify(workspace, [
      ...quirks.map((file) => file.path),
      ...dkimpyPaths,
    ]);
    for (const [index, file] of quirks.entries()) {
      const ours = verdictOf(reports.get(file.path) ?? '');
      const theirs = verdictOf(reports.get(dkimpyPaths[index] ?? '') ?? '');
      expect(theirs, file.label).toBe(ours);
    }
  });

  it('verifies with dkimpy', async () => {
    const checked = files.filter((file) => !DKIMPY_REJECTS.has(file.message.name));
    const results = await runDkimpy(
      workspace,
      checked.map((file) => ({ op: 'verify', path: file.path })),
    );
    const failures = checked
      .filter((_, index) => JSON.stringify(results[index]) !== JSON.stringify({ ok: [true] }))
      .map((file) => `${file.label}: ${JSON.stringify(results[checked.indexOf(file)])}`);
    expect(failures).toEqual([]);
  });

  it('verifies with Herald', async () => {
    const failures: string[] = [];
    for (const file of files) {
      const results = await verifyMessage(await readFile(file.path), { lookupTxt });
      if (results.length !== 1 || results[0]?.result !== 'pass')
        failures.push(`${file.label}: ${JSON.stringify(results)}`);
    }
    expect(failures).toEqual([]);
  });
});

describe('dkimpy-signed corpus', () => {
  it('verifies with Herald', async () => {
    const jobs: DkimpyJob[] = [];
    const labels: string[] = [];
    for (const key of keys) {
      for (const canonicalization of CANONICALIZATIONS) {
        const messages = corpus.filter(
          (entry) => !DKIMPY_REJECTS.has(entry.name) && includeLarge(entry, key, canonicalization),
        );
        for (const message of messages) {
          const path = join(workspace.directory, `source-${message.name}`);
          await writeFile(path, message.bytes);
          jobs.push({
            op: 'sign',
            path,
            selector: key.selector,
            domain: key.domain,
            key: dkimpyKey(key),
            algorithm: key.algorithm,
            canonicalization,
          });
          labels.push(`${message.name} ${key.algorithm} ${canonicalization}`);
        }
      }
    }
    const signatures = await runDkimpy(workspace, jobs);
    const failures: string[] = [];
    for (const [index, job] of jobs.entries()) {
      const signature = signatures[index]?.signature;
      if (signature === undefined) {
        failures.push(`${labels[index]}: dkimpy did not sign: ${signatures[index]?.error}`);
        continue;
      }
      const message = Buffer.concat([Buffer.from(signature), await readFile(job.path)]);
      const results = await verifyMessage(message, { lookupTxt });
      if (results[0]?.result !== 'pass')
        failures.push(`${labels[index]}: ${JSON.stringify(results)}`);
    }
    expect(failures).toEqual([]);
  });
});

function isOpendkimQuirk(file: SignedFile): boolean {
  return OPENDKIM_TEST_MODE_QUIRKS.has(`${file.message.name} ${file.canonicalization}`);
}

/** Strips the file name from an OpenDKIM report, so reports on two files compare. */
function verdictOf(report: string): string {
  return report.replace(/^opendkim: [^:]+: /, '').replace(/\(s=\S+ d=/, '(d=');
}

describe('two signatures in one pass', () => {
  it('verify with all three verifiers', async () => {
    const message = corpus.find((entry) => entry.name === 'list-headers.eml');
    const signed = signMessage(message!.bytes, {
      signatures: keys.map((key) => ({
        domain: key.domain,
        selector: key.selector,
        privateKey: key.privateKey,
      })),
    });
    const path = join(workspace.directory, 'dual-signed.eml');
    await writeFile(path, signed);
    const herald = await verifyMessage(signed, { lookupTxt });
    expect(herald.map((result) => result.result)).toEqual(['pass', 'pass']);
    const [dkimpy] = await runDkimpy(workspace, [{ op: 'verify', path }]);
    expect(dkimpy).toEqual({ ok: [true, true] });
    const reports = await opendkimVerify(workspace, [path]);
    expect(opendkimPassed(reports.get(path) ?? '')).toBe(true);
  });
});

describe('tampering', () => {
  it('fails with OpenDKIM, dkimpy and Herald', async () => {
    const message = corpus.find((entry) => entry.name === 'plain-crlf.eml');
    const key = keys[0]!;
    const signed = signMessage(message!.bytes, {
      signatures: [{ domain: key.domain, selector: key.selector, privateKey: key.privateKey }],
    });
    const bodyChanged = Buffer.from(
      signed.toString('latin1').replace('quick brown', 'quick green'),
      'latin1',
    );
    const subjectChanged = Buffer.from(
      signed.toString('latin1').replace('Subject: Corpus', 'Subject: Korpus'),
      'latin1',
    );
    const bodyPath = join(workspace.directory, 'tampered-body.eml');
    const subjectPath = join(workspace.directory, 'tampered-subject.eml');
    await writeFile(bodyPath, bodyChanged);
    await writeFile(subjectPath, subjectChanged);

    const [bodyResult] = await verifyMessage(bodyChanged, { lookupTxt });
    expect(bodyResult?.result).toBe('fail');
    expect(bodyResult?.code).toBe('body_hash_mismatch');
    const [subjectResult] = await verifyMessage(subjectChanged, { lookupTxt });
    expect(subjectResult?.result).toBe('fail');
    expect(subjectResult?.code).toBe('signature_mismatch');

    const reports = await opendkimVerify(workspace, [bodyPath, subjectPath]);
    expect(opendkimPassed(reports.get(bodyPath) ?? '')).toBe(false);
    expect(opendkimPassed(reports.get(subjectPath) ?? '')).toBe(false);
    const dkimpy = await runDkimpy(workspace, [
      { op: 'verify', path: bodyPath },
      { op: 'verify', path: subjectPath },
    ]);
    expect(dkimpy).toEqual([{ ok: [false] }, { ok: [false] }]);
  });
});
