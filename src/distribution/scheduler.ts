/**
 * Starts campaigns when their time comes and resumes those left `sending` by a restart. It
 * looks at the store every `intervalMs` and runs one campaign at a time, because signing
 * already uses every core through the pool.
 */
import type { CampaignSender, SenderLogger } from './sender.js';
import type { DistributionStore } from './types.js';

export interface CampaignScheduler {
  /** Looks for due campaigns now instead of at the next interval. */
  wake(): void;
  /**
   * Stops sending within moments, giving back the batches in flight; the campaign stays
   * `sending` and resumes on restart or on another node.
   */
  stop(): Promise<void>;
}

export function startCampaignScheduler(options: {
  distribution: DistributionStore;
  sender: CampaignSender;
  logger?: SenderLogger;
  intervalMs?: number;
}): CampaignScheduler {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let again = false;

  const tick = async (): Promise<void> => {
    const due = await options.distribution.dueCampaigns(new Date());
    for (const campaign of due) {
      if (controller.signal.aborted) return;
      if (campaign.status === 'scheduled') {
        await options.distribution.updateCampaign(campaign.id, {
          status: 'sending',
          startedAt: new Date(),
        });
      }
      options.logger?.info({ campaign: campaign.id }, 'campaign sending');
      const result = await options.sender.run(campaign.id, controller.signal);
      options.logger?.info({ campaign: campaign.id, status: result.status }, 'campaign run ended');
    }
  };

  const schedule = (delay: number): void => {
    if (controller.signal.aborted) return;
    clearTimeout(timer);
    timer = setTimeout(run, delay);
    timer.unref();
  };

  function run(): void {
    if (running) {
      again = true;
      return;
    }
    running = tick()
      .catch((error: unknown) =>
        options.logger?.warn({ err: error }, 'campaign scheduler failed; retrying'),
      )
      .finally(() => {
        running = undefined;
        if (again) {
          again = false;
          schedule(0);
        } else {
          schedule(options.intervalMs ?? 5000);
        }
      });
  }

  schedule(0);
  return {
    wake: () => schedule(0),
    async stop() {
      controller.abort();
      clearTimeout(timer);
      await running;
    },
  };
}
