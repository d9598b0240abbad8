import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { startDistribution } from '../../src/distribution/runtime.js';
import { ADMIN } from '../../src/distribution/service.js';
import { openStore } from '../../src/store/index.js';
import { startPostgres } from '../helpers/postgres.js';

describe('startDistribution', () => {
  it('opens on the mail store file and closes cleanly', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'herald-distribution-runtime-'));
    const url = `sqlite:${path.join(dir, 'herald.db')}`;
    const store = await openStore({ url });
    try {
      const runtime = await startDistribution({
        store,
        storeUrl: url,
        keys: { signaturesFor: () => [] },
        signer: { signBatch: (messages) => Promise.resolve([...messages]) },
      });
      const organisation = await runtime.service.createOrganisation(ADMIN, 'Club');
      expect(await runtime.distribution.getOrganisation(organisation.id)).toMatchObject({
        name: 'Club',
      });
      expect(
        await runtime.inbound.route('bounces+1.1.0123456789abcdef0123@unknown.example'),
      ).toEqual({
        kind: 'none',
      });
      await runtime.close();
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('opens on a PostgreSQL store', async () => {
    const cluster = await startPostgres();
    try {
      const url = await cluster.createDatabase();
      const store = await openStore({ url });
      const runtime = await startDistribution({
        store,
        storeUrl: url,
        keys: { signaturesFor: () => [] },
        signer: { signBatch: (messages) => Promise.resolve([...messages]) },
      });
      const organisation = await runtime.service.createOrganisation(ADMIN, 'Club');
      expect(await runtime.distribution.getOrganisation(organisation.id)).toMatchObject({
        name: 'Club',
      });
      await runtime.close();
      await store.close();
      const { rows } = await cluster.query('SELECT name FROM organisations', [], url);
      expect(rows).toEqual([{ name: 'Club' }]);
    } finally {
      await cluster.stop();
    }
  }, 60_000);
});
