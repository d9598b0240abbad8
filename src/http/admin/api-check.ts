/**
 * REST API routes of the setup assistant, beside the other `/api` routes (bearer token):
 *
 *   GET  /api/domains/:name/check              the DNS check report and the readiness card
 *   GET  /api/domains/:name/rotation           the state of the key rotation
 *   POST /api/domains/:name/rotation           start a rotation (201, with the new keys)
 *   POST /api/domains/:name/rotation/advance   check DNS, switch signing once it serves them
 */
import type { FastifyInstance } from 'fastify';

import { checkDomain, checkReadiness, sendingAddressesOf } from '../../dns/check.js';
import * as rotation from '../../domains/rotation.js';

import type { AdminOptions } from './context.js';

type Params = Record<string, string>;

export function registerDnsCheckRoutes(api: FastifyInstance, options: AdminOptions): void {
  const { context, lookups } = options;

  api.get('/domains/:name/check', async (request) => {
    const { name = '' } = request.params as Params;
    const target = await rotation.domainCheckTarget(
      context,
      name,
      options.readiness?.sendingAddresses ?? [],
    );
    const report = await checkDomain(lookups, target);
    const readiness = await checkReadiness(lookups, report, {
      sendingAddresses: await sendingAddressesOf(lookups, target),
      oneClickUnsubscribe: options.readiness?.oneClickUnsubscribe ?? true,
      outboundTls: options.readiness?.outboundTls ?? true,
    });
    return { ...report, readiness };
  });

  api.get('/domains/:name/rotation', (request) =>
    rotation.rotationStatus(context, (request.params as Params).name ?? ''),
  );

  api.post('/domains/:name/rotation', async (request, reply) => {
    const status = await rotation.startRotation(context, (request.params as Params).name ?? '');
    return reply.code(201).send(status);
  });

  api.post('/domains/:name/rotation/advance', async (request) => {
    const status = await rotation.advanceRotation(
      context,
      lookups,
      (request.params as Params).name ?? '',
    );
    if (status.stage !== 'waiting-for-dns') await options.onChange?.();
    return status;
  });
}
