/**
 * The list of command groups. Every group lives in its own module with a `register` function
 * that declares its options and imports its implementation lazily inside the action.
 */
import type { Command } from 'commander';

export function registerCommands(_program: Command): void {
  // Command groups are added here as they are built.
}
