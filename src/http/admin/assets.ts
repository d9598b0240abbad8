/**
 * Serves the admin stylesheet and script from `src/http/assets/`. The build does not copy
 * them into `dist/`, so a compiled Herald reads them from the source tree beside it.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import type { FastifyInstance } from 'fastify';

const ASSETS: Record<string, string> = {
  'admin.css': 'text/css; charset=utf-8',
  'admin.js': 'text/javascript; charset=utf-8',
};

/** `src/http/assets/` whether this module runs from `src/` (tsx) or `dist/` (compiled). */
function assetDirectory(): URL {
  const here = fileURLToPath(import.meta.url);
  return here.includes('/dist/')
    ? new URL('../../../src/http/assets/', import.meta.url)
    : new URL('../assets/', import.meta.url);
}

export function registerAssets(app: FastifyInstance): void {
  const directory = assetDirectory();
  const contents = new Map<string, Buffer>();
  for (const name of Object.keys(ASSETS)) {
    contents.set(name, readFileSync(new URL(name, directory)));
  }
  app.get('/admin/assets/:name', (request, reply) => {
    const { name = '' } = request.params as Record<string, string>;
    const body = contents.get(name);
    if (!body) return reply.code(404).type('text/plain').send('not found');
    return reply
      .type(ASSETS[name] ?? 'application/octet-stream')
      .header('cache-control', 'max-age=300')
      .send(body);
  });
}
