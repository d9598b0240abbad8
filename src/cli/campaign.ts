/**
 * `herald campaign create|preview|test|send|pause|resume|cancel|status`. `send` runs the send
 * loop in this process and shows a live progress bar on a terminal; the messages enter the
 * queue, and the delivery workers of `herald serve` deliver them. Without `--wait`, `send`
 * with `--at` only schedules the campaign.
 */
import { readFileSync } from 'node:fs';

import type { Command } from 'commander';

import type { CampaignProgress } from '../distribution/progress.js';
import type { CampaignSender } from '../distribution/sender.js';
import type { CampaignReport } from '../distribution/service.js';
import { addCommonOptions, printJson, type CommonOptions } from './domain.js';
import { CliError, EXIT_USAGE } from './exit-codes.js';
import { parseId, resolveOrganisation, withDistribution } from './org.js';

interface CreateOptions extends CommonOptions {
  list: string;
  from: string;
  subject: string;
  html: string;
  text?: string;
  replyTo?: string;
  name?: string;
  rate?: string;
  organisation?: string;
}

export function registerCampaignCommands(program: Command): void {
  const campaign = program.command('campaign').description('create, send and follow campaigns');

  addCommonOptions(
    campaign
      .command('create')
      .description('create a draft campaign')
      .requiredOption('--list <id>', 'list to send to')
      .requiredOption(
        '--from <address>',
        'From address at one of the organisation\'s domains, "Name <a@b>" allowed',
      )
      .requiredOption('--subject <text>', 'subject, merge fields allowed: {{first_name|friend}}')
      .requiredOption('--html <file>', 'file with the HTML body')
      .option('--text <file>', 'file with the text body; generated from the HTML when absent')
      .option('--reply-to <address>', 'Reply-To address')
      .option('--name <text>', 'campaign name for reports')
      .option(
        '--rate <per-minute>',
        'messages per minute for the whole campaign; 0 for no limit',
        '0',
      ),
  ).action(async (options: CreateOptions) => {
    const { ADMIN } = await import('../distribution/service.js');
    await withDistribution(options, async ({ service }) => {
      const list = await service.getList(ADMIN, parseId(options.list, 'list'));
      const rate = Number(options.rate ?? 0);
      if (!Number.isInteger(rate) || rate < 0)
        throw new CliError(
          `invalid --rate "${options.rate}": expected messages per minute`,
          EXIT_USAGE,
        );
      const created = await service.createCampaign(ADMIN, {
        organisationId: list.organisationId,
        listId: list.id,
        name: options.name ?? options.subject,
        fromAddress: options.from,
        replyTo: options.replyTo ?? '',
        subject: options.subject,
        html: readText(options.html),
        text: options.text ? readText(options.text) : '',
        ratePerMinute: rate,
      });
      if (options.json) printJson(created);
      else process.stdout.write(`campaign ${created.id} created (draft)\n`);
    });
  });

  addCommonOptions(
    campaign
      .command('preview <campaign-id>')
      .description('print the message a subscriber would receive, before signing')
      .option(
        '--address <address>',
        'subscriber to render for; the first subscribed one when absent',
      ),
  ).action(async (id: string, options: CommonOptions & { address?: string }) => {
    const { ADMIN } = await import('../distribution/service.js');
    await withDistribution({ ...options, withSender: true }, async ({ service }) => {
      const message = await service.preview(ADMIN, parseId(id, 'campaign'), options.address);
      process.stdout.write(message);
    });
  });

  addCommonOptions(
    campaign
      .command('test <campaign-id> <addresses...>')
      .description('queue the campaign to test addresses'),
  ).action(async (id: string, addresses: string[], options: CommonOptions) => {
    const { ADMIN } = await import('../distribution/service.js');
    await withDistribution({ ...options, withSender: true }, async ({ service }) => {
      const ids = await service.sendTest(ADMIN, parseId(id, 'campaign'), addresses);
      if (options.json) printJson({ queueIds: ids });
      else process.stdout.write(`queued ${ids.length} test messages: ${ids.join(' ')}\n`);
    });
  });

  addCommonOptions(
    campaign
      .command('send <campaign-id>')
      .description('send a campaign now, or schedule it with --at')
      .option('--at <time>', 'ISO 8601 time to start sending')
      .option('--wait', 'with --at, wait in this process until the time and send'),
  ).action(async (id: string, options: CommonOptions & { at?: string; wait?: boolean }) => {
    const { ADMIN } = await import('../distribution/service.js');
    const at = options.at ? parseTime(options.at) : undefined;
    await withDistribution(
      { ...options, withSender: true },
      async ({ service, distribution, sender }) => {
        const campaignId = parseId(id, 'campaign');
        // A campaign already sending (from the server's scheduler or another `campaign send`)
        // is joined: this process claims batches beside the others.
        const existing = await service.getCampaign(ADMIN, campaignId);
        const current =
          existing.status === 'sending' && at === undefined
            ? existing
            : await service.send(ADMIN, campaignId, at);
        if (current.status === 'scheduled') {
          if (!options.wait) {
            process.stdout.write(
              `campaign ${campaignId} scheduled for ${current.scheduledAt?.toISOString()}\n`,
            );
            return;
          }
          await new Promise((resolve) =>
            setTimeout(resolve, Math.max(0, (at?.getTime() ?? 0) - Date.now())),
          );
          await distribution.updateCampaign(campaignId, {
            status: 'sending',
            startedAt: new Date(),
          });
        }
        const outcome = await runWithProgress(sender!, campaignId, options.json === true);
        if (options.json) printJson(await service.progress(ADMIN, campaignId));
        else process.stdout.write(`campaign ${campaignId} ${outcome}\n`);
      },
    );
  });

  for (const [verb, description] of [
    ['pause', 'pause sending within about half a second; resume continues without repeats'],
    ['resume', 'resume a paused campaign and send the rest'],
    ['cancel', 'cancel a campaign; queued messages stay queued'],
  ] as const) {
    addCommonOptions(campaign.command(`${verb} <campaign-id>`).description(description)).action(
      async (id: string, options: CommonOptions) => {
        const { ADMIN } = await import('../distribution/service.js');
        await withDistribution(
          { ...options, withSender: verb === 'resume' },
          async ({ service, sender }) => {
            const campaignId = parseId(id, 'campaign');
            const changed = await service[verb](ADMIN, campaignId);
            if (verb === 'resume') {
              const status = await runWithProgress(sender!, campaignId, options.json === true);
              process.stdout.write(`campaign ${campaignId} ${status}\n`);
            } else if (options.json) printJson(changed);
            else process.stdout.write(`campaign ${campaignId} ${changed.status}\n`);
          },
        );
      },
    );
  }

  addCommonOptions(
    campaign
      .command('status [campaign-id]')
      .description('show totals, rates and recent events of a campaign, or list campaigns')
      .option('--organisation <organisation>', 'list only the campaigns of this organisation'),
  ).action(async (id: string | undefined, options: CommonOptions & { organisation?: string }) => {
    const { ADMIN } = await import('../distribution/service.js');
    await withDistribution({ ...options, withSender: true }, async ({ service, distribution }) => {
      if (id === undefined) {
        let campaigns = await service.listCampaigns(ADMIN);
        if (options.organisation) {
          const organisation = await resolveOrganisation(distribution, options.organisation);
          campaigns = campaigns.filter((item) => item.organisationId === organisation.id);
        }
        if (options.json) return printJson(campaigns);
        for (const item of campaigns)
          process.stdout.write(`${item.id}  ${item.status.padEnd(9)}  ${item.name}\n`);
        return;
      }
      const report = await service.report(ADMIN, parseId(id, 'campaign'), 20);
      if (options.json) return printJson(report);
      printReport(report);
    });
  });
}

/** Runs the send loop, drawing the progress bar on a terminal; Ctrl-C stops after the batch. */
async function runWithProgress(
  sender: CampaignSender,
  campaignId: number,
  quiet: boolean,
): Promise<string> {
  const { formatProgressBar } = await import('../distribution/progress.js');
  const terminal = process.stderr.isTTY && !quiet;
  const show = (progress: CampaignProgress): void => {
    if (terminal) process.stderr.write(`\r${formatProgressBar(progress)}\u001b[K`);
  };
  const controller = new AbortController();
  const stop = (): void => controller.abort();
  process.once('SIGINT', stop);
  try {
    const finished = await sender.run(campaignId, controller.signal, show);
    show(await sender.progress(campaignId));
    if (terminal) process.stderr.write('\n');
    if (controller.signal.aborted) return 'stopped; resume it with herald campaign resume';
    return finished.status;
  } finally {
    process.off('SIGINT', stop);
  }
}

function printReport(report: CampaignReport): void {
  const { campaign, progress } = report;
  const out = (line: string): boolean => process.stdout.write(`${line}\n`);
  out(`campaign ${campaign.id} ${campaign.name}: ${campaign.status}`);
  out(`  total ${progress.total}, sent ${progress.sent}, remaining ${progress.remaining}`);
  out(
    `  delivered ${progress.delivered}, deferred ${progress.deferred}, queued ${progress.queued}, ` +
      `bounced ${progress.bounced}, complained ${progress.complained}, unsubscribed ${progress.unsubscribed}, ` +
      `suppressed ${progress.suppressed}`,
  );
  out(
    `  bounce rate ${(report.bounceRate * 100).toFixed(2)}% (review at 5%), ` +
      `complaint rate ${(report.complaintRate * 100).toFixed(3)}% (target under 0.1%, maximum 0.3%)`,
  );
  for (const warning of report.warnings) out(`  warning: ${warning}`);
  if (report.events.length > 0) out('  recent events:');
  for (const event of report.events) {
    out(
      `    ${event.time.toISOString()} ${event.kind} subscriber ${event.subscriberId ?? '-'} ${event.detail}`,
    );
  }
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new CliError(`cannot read ${file}: ${(error as Error).message}`, EXIT_USAGE);
  }
}

function parseTime(value: string): Date {
  const date = new Date(value);
  if (Number.isNaN(date.getTime()))
    throw new CliError(`invalid --at "${value}": expected an ISO 8601 time`, EXIT_USAGE);
  return date;
}
