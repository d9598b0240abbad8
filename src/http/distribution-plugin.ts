/**
 * The distribution plugin for Herald's HTTP app: the REST API under `/api` and the
 * unsubscribe pages under `/u/`. It is encapsulated (its authentication hook, error handler
 * and body parsers apply to its own routes only), so register it beside the other API routes:
 *
 *   await app.register(distributionPlugin, { service, distribution, recorder, adminTokens });
 */
import type { FastifyInstance } from 'fastify';

import type { FeedbackRecorder } from '../distribution/feedback.js';
import type { DistributionService } from '../distribution/service.js';
import type { DistributionStore } from '../distribution/types.js';
import { registerDistributionRoutes } from './distribution-routes.js';
import { registerUnsubscribeRoutes } from './distribution-unsubscribe.js';

export interface DistributionPluginOptions {
  service: DistributionService;
  distribution: DistributionStore;
  recorder: FeedbackRecorder;
  adminTokens: readonly string[];
  onCampaignStarted?: () => void;
}

export async function distributionPlugin(
  app: FastifyInstance,
  options: DistributionPluginOptions,
): Promise<void> {
  await app.register(
    async (api) => {
      registerDistributionRoutes(api, options);
      return Promise.resolve();
    },
    { prefix: '/api' },
  );
  await app.register(async (pages) => registerUnsubscribeRoutes(pages, options));
}
