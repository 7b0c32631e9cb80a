export { jsonText } from './json.js';
export { stderrLogger, usageError } from './one-shot.js';
export { type ProgressEvent, type ProgressSink, terminalProgress } from './progress.js';
export { type CliExit, keepExitCodes, type Output, runCli } from './run-cli.js';
export { table } from './table.js';
