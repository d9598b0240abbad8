import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { createLogger } from './log/index.js';
import { loadSrsSecrets } from './server.js';

const directory = mkdtempSync(join(tmpdir(), 'herald-server-'));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

describe('SRS secrets file', () => {
  it('gives racing starts one secret', async () => {
    const path = join(directory, 'shared', 'srs-secrets');
    const logger = createLogger({ level: 'silent' });
    const loads = await Promise.all(Array.from({ length: 8 }, () => loadSrsSecrets(path, logger)));
    const secrets = new Set(loads.map((secrets) => secrets.join(',')));
    expect(secrets.size).toBe(1);
    expect(loads[0]!.length).toBe(1);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readdirSync(join(directory, 'shared'))).toEqual(['srs-secrets']);
  });
});
