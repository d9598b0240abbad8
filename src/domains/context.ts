/**
 * Opens what the management commands need from the configuration alone: the store, the data
 * directory, the host name and the SRS domain. Used by the CLI, which runs without the server.
 */
import { loadConfig } from '../config/load.js';
import { openStore } from '../store/index.js';

import type { ServiceContext } from './service.js';

export type ManagementContext = ServiceContext & { hostname: string; srsDomain: string };

export async function openManagementContext(
  configPath: string | undefined,
  env: NodeJS.ProcessEnv,
): Promise<ManagementContext> {
  const config = loadConfig(configPath, env);
  const store = await openStore({ url: config.store.url });
  return {
    store,
    dataDir: config.dataDir,
    hostname: config.hostname,
    srsDomain: config.srs.domain,
  };
}
