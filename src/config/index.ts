/**
 * Herald's configuration: `loadConfig(path?, env)` returns a fully typed `HeraldConfig` with a
 * default for every setting. `docs/configuration.md` lists the settings.
 */
export { CONFIG_PATH_VARIABLE, ConfigError, loadConfig } from './load.js';
export {
  SETTINGS,
  environmentName,
  type HeraldConfig,
  type Listen,
  type LogLevel,
  type Setting,
} from './settings.js';
export { formatDuration, parseDuration, parseSize } from './units.js';
