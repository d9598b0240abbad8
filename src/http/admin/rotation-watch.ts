/**
 * Advances DKIM key rotations without an operator: at a fixed interval it checks the pending
 * keys of every domain in DNS and switches signing once DNS serves them, then calls `onChange`
 * so the server reloads its keyring. The admin page and `herald dns rotation` do the same step on demand.
 */
import type { FastifyBaseLogger } from 'fastify';

import * as rotation from '../../domains/rotation.js';

import type { AdminOptions } from './context.js';

/** How often pending keys are looked up in DNS, by default: 5 minutes. */
export const DEFAULT_ROTATION_CHECK_MS = 5 * 60 * 1000;

export interface RotationWatch {
  /** Runs one round now; resolves when every domain was looked at. */
  check(): Promise<void>;
  stop(): void;
}

export function watchRotations(
  options: AdminOptions,
  logger: FastifyBaseLogger,
  intervalMs = DEFAULT_ROTATION_CHECK_MS,
): RotationWatch {
  const { context, lookups } = options;
  let running: Promise<void> | undefined;

  const round = async () => {
    for (const domain of await context.store.listDomains()) {
      const keys = await context.store.listDkimKeys(domain.id);
      if (!keys.some((key) => key.status === 'pending')) continue;
      try {
        const status = await rotation.advanceRotation(context, lookups, domain.name);
        if (status.stage === 'waiting-for-dns') continue;
        logger.info(
          { domain: domain.name, stage: status.stage },
          'DKIM signing switched to new keys',
        );
        await options.onChange?.();
      } catch (error) {
        logger.warn(
          { err: error, domain: domain.name },
          'DKIM rotation check failed; retrying later',
        );
      }
    }
  };
  const check = () => {
    running ??= round().finally(() => {
      running = undefined;
    });
    return running;
  };

  const timer = setInterval(() => {
    check().catch((error: unknown) => logger.warn({ err: error }, 'DKIM rotation round failed'));
  }, intervalMs);
  timer.unref();
  return { check, stop: () => clearInterval(timer) };
}
