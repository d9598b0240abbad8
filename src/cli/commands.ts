/**
 * The list of command groups. Every group lives in its own module with a `register` function
 * that declares its options and imports its implementation lazily inside the action.
 */
import type { Command } from 'commander';

import { registerAliasCommands } from './alias.js';
import { registerCampaignCommands } from './campaign.js';
import { registerClusterCommands } from './cluster.js';
import { registerCredentialCommands } from './credential.js';
import { registerDkimCommands } from './dkim.js';
import { registerDnsCommands } from './dns.js';
import { registerDomainCommands } from './domain.js';
import { registerListCommands } from './list.js';
import { registerOrgCommands } from './org.js';
import { registerQueueCommands } from './queue.js';
import { registerServeCommand } from './serve.js';
import { registerSrsCommands } from './srs.js';

export function registerCommands(program: Command): void {
  // Command groups are added here as they are built.
  registerServeCommand(program);
  registerDomainCommands(program);
  registerAliasCommands(program);
  registerCredentialCommands(program);
  registerQueueCommands(program);
  registerSrsCommands(program);
  registerDkimCommands(program);
  registerDnsCommands(program);
  registerOrgCommands(program);
  registerListCommands(program);
  registerCampaignCommands(program);
  registerClusterCommands(program);
}
