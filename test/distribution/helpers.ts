/**
 * Shared set-up for the distribution integration tests: a mail store and distribution store on
 * one SQLite file in a temporary directory or on the PostgreSQL database `storeUrl` names, an
 * organisation owning a hosted domain with an RSA-2048 DKIM key published in a loopback DNS
 * server, and dkimpy as the independent verifier.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { dkimRecordValue, generateKeyPair, type SignatureOptions } from '../../src/dkim/index.js';
import { FeedbackRecorder } from '../../src/distribution/feedback.js';
import {
  CampaignSender,
  type BatchSigner,
  type SigningKeySource,
} from '../../src/distribution/sender.js';
import { DistributionService, ADMIN } from '../../src/distribution/service.js';
import {
  DEFAULT_DISTRIBUTION_SETTINGS,
  type DistributionSettings,
} from '../../src/distribution/settings.js';
import type { DistributionStore, Organisation } from '../../src/distribution/types.js';
import { openDistributionStore } from '../../src/store/distribution-index.js';
import { openStore } from '../../src/store/index.js';
import type { Store } from '../../src/store/types.js';

export interface DistributionHarness {
  dir: string;
  store: Store;
  distribution: DistributionStore;
  service: DistributionService;
  sender: CampaignSender;
  /** The DKIM key of `domain`, for a second sender on the same database. */
  keys: SigningKeySource;
  recorder: FeedbackRecorder;
  settings: DistributionSettings;
  organisation: Organisation;
  domain: string;
  selector: string;
  /** TXT records to publish: name -> value. */
  txtRecords: Record<string, string>;
  close(): Promise<void>;
}

export async function startHarness(options: {
  signer: BatchSigner;
  domain?: string;
  settings?: Partial<DistributionSettings>;
  notify?: () => void;
  /** `store.url` of an empty database (PostgreSQL); a SQLite file in `dir` when omitted. */
  storeUrl?: string;
}): Promise<DistributionHarness> {
  const dir = mkdtempSync(path.join(tmpdir(), 'herald-distribution-'));
  const url = options.storeUrl ?? `sqlite:${path.join(dir, 'herald.db')}`;
  const store = await openStore({ url });
  const distribution = await openDistributionStore(url);
  const domain = options.domain ?? 'news.test';
  const selector = 'h20261203r';

  await store.addDomain(domain);
  const { privateKey } = await generateKeyPair({ algorithm: 'rsa', bits: 2048 });
  const signatures: SignatureOptions[] = [{ domain, selector, privateKey }];
  const keys: SigningKeySource = {
    signaturesFor: (name: string) => (name.toLowerCase() === domain ? signatures : []),
  };

  const settings = { ...DEFAULT_DISTRIBUTION_SETTINGS, batchSize: 200, ...options.settings };
  const recorder = new FeedbackRecorder(distribution, settings.softBounceThreshold);
  const sender = new CampaignSender({
    store,
    distribution,
    signer: options.signer,
    keys,
    settings,
    recorder,
    notify: options.notify,
  });
  const service = new DistributionService({ store, distribution, sender });
  const organisation = await service.createOrganisation(ADMIN, 'Rowing Club');
  await service.assignDomain(ADMIN, organisation.id, domain);

  return {
    dir,
    store,
    distribution,
    service,
    sender,
    keys,
    recorder,
    settings,
    organisation,
    domain,
    selector,
    txtRecords: { [`${selector}._domainkey.${domain}`]: dkimRecordValue(privateKey) },
    async close() {
      await distribution.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const DKIMPY_VERIFY = `
import dkim, json, os, sys
spec = json.load(sys.stdin)
records = spec["records"]
def lookup(name, timeout=5):
    key = name.decode() if isinstance(name, bytes) else name
    value = records.get(key.rstrip("."))
    return value.encode() if value is not None else None
results = {}
for name in sorted(os.listdir(spec["dir"])):
    with open(os.path.join(spec["dir"], name), "rb") as handle:
        results[name] = bool(dkim.verify(handle.read(), dnsfunc=lookup))
json.dump(results, sys.stdout)
`;

/** Verifies each message with dkimpy (Debian's python3-dkim) and returns the verdicts. */
export function verifyWithDkimpy(
  dir: string,
  messages: Buffer[],
  records: Record<string, string>,
): boolean[] {
  const folder = mkdtempSync(path.join(dir, 'dkimpy-'));
  messages.forEach((message, index) =>
    writeFileSync(path.join(folder, `${String(index).padStart(6, '0')}.eml`), message),
  );
  const output = execFileSync('/usr/bin/python3', ['-c', DKIMPY_VERIFY], {
    input: JSON.stringify({ dir: folder, records }),
    maxBuffer: 16 * 1024 * 1024,
  });
  const verdicts = JSON.parse(output.toString()) as Record<string, boolean>;
  return Object.keys(verdicts)
    .sort()
    .map((name) => verdicts[name]!);
}
