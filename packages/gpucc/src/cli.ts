import {
  createLogger,
  defaultMetricsAddress,
  jsonText,
  keepExitCodes,
  LOG_FORMATS,
  LOG_LEVELS,
  mirroredFlag,
  mirroredOption,
  openHost,
  readOptions,
  runCli,
} from '@gpucc/daemon';
import { Command } from 'commander';
import * as z from 'zod/mini';
import { formatStatus, renderOptionsFor } from './format.js';
import { withHealth } from './health.js';
import { type NodeView, type OperandName, observeNode } from './observe.js';
import { findProblems, type Problem } from './problems.js';
import { watchStatus } from './watch.js';

export const VERSION = '0.1.0';
export const BINARY = 'gpucc';

/** Where the screen goes, and what it knows of the terminal: injected by tests, process.stdout otherwise. */
export interface Terminal {
  write: (text: string) => void;
  isTTY?: boolean;
  columns?: number;
  env: NodeJS.ProcessEnv;
  /** Ends --watch (Ctrl-C); the CLI listens for SIGINT and SIGTERM when none is given. */
  signal?: AbortSignal;
}

function processTerminal(): Terminal {
  return {
    write: (t) => process.stdout.write(t),
    isTTY: process.stdout.isTTY === true,
    columns: process.stdout.columns,
    env: process.env,
  };
}

/** What `--output json` prints: the view and its problems. */
export type StatusDocument = NodeView & { problems: Problem[] };

const statusSchema = z.object({
  hostRoot: z.string().check(z.minLength(1, 'must not be empty')),
  output: z.enum(['table', 'json']),
  watch: z._default(z.boolean(), false),
  interval: z.coerce.number().check(z.int(), z.minimum(100)),
  nodeName: z.optional(z.string()),
  cdiDir: z.pipe(
    z.union([z.string(), z.array(z.string())]),
    z.transform((v) =>
      [v]
        .flat()
        .flatMap((d) => d.split(','))
        .filter((d) => d !== ''),
    ),
  ),
  logFormat: z.enum(LOG_FORMATS),
  logLevel: z.enum(LOG_LEVELS),
  probeHealth: z._default(z.boolean(), false),
  healthAddress: z.pipe(
    z.optional(z.union([z.string(), z.array(z.string())])),
    z.transform((v, ctx) => {
      const entries = (v === undefined ? [] : [v].flat()).flatMap((e) => e.split(',')).filter((e) => e !== '');
      const addresses: Partial<Record<OperandName, string>> = {};
      for (const entry of entries) {
        const match = /^(cc-manager|vfio-manager|kata-manager|sandbox-device-plugin)=([^\s,=]+:\d+)$/.exec(entry);
        if (!match) {
          ctx.issues.push({
            code: 'custom',
            message: `expected <operand>=<host>:<port>, not ${JSON.stringify(entry)}`,
            input: v,
          });
          return z.NEVER;
        }
        addresses[match[1] as OperandName] = match[2]!;
      }
      return addresses;
    }),
  ),
});

const OPERANDS: OperandName[] = ['cc-manager', 'vfio-manager', 'kata-manager', 'sandbox-device-plugin'];

/** Where to ask each operand's /readyz: the given addresses, and with --probe-health the defaults for the rest. */
function healthAddresses(o: z.infer<typeof statusSchema>): Partial<Record<OperandName, string>> {
  const defaults = o.probeHealth ? Object.fromEntries(OPERANDS.map((n) => [n, defaultMetricsAddress(n)])) : {};
  return { ...defaults, ...o.healthAddress };
}

function program(terminal: Terminal, exit: { code: number }): Command {
  const cli = new Command(BINARY)
    .description('The whole Confidential Containers GPU node at a glance, read-only')
    .version(VERSION);

  const status = new Command('status')
    .description(
      'every GPU and NVSwitch: mode, VFIO, CDI, advertised health, pod, holder; then what is wrong and how to fix it',
    )
    .addOption(
      mirroredOption('--host-root <dir>', 'host root: /, /host or a captured or simulated node', { default: '/' }),
    )
    .addOption(mirroredOption('--output <format>', 'table or json', { default: 'table' }))
    .addOption(mirroredFlag('--watch', 'redraw when anything changes (appended lines when not a terminal)'))
    .addOption(
      mirroredOption('--interval <ms>', 'with --watch: poll for what sends no event (sysfs, proc)', {
        default: '2000',
      }),
    )
    .addOption(mirroredOption('--node-name <name>', 'the node name to show (default: NODE_NAME, else etc/hostname)'))
    .addOption(
      mirroredOption('--cdi-dir <dir...>', 'CDI spec directories on the host', { default: '/var/run/cdi,/etc/cdi' }),
    )
    .addOption(
      mirroredFlag('--probe-health', "ask each operand's /readyz at its default address (127.0.0.1:9471-9474)"),
    )
    .addOption(
      mirroredOption('--health-address <operand=host:port...>', "ask this operand's /readyz here (implies probing it)"),
    )
    .addOption(mirroredOption('--log-format <format>', `log format: ${LOG_FORMATS.join(', ')}`, { default: 'auto' }))
    .addOption(mirroredOption('--log-level <level>', `log level: ${LOG_LEVELS.join(', ')}`, { default: 'warn' }))
    .action(async (_o, command: Command) => {
      const o = readOptions(command, statusSchema);
      const logger = createLogger({
        name: BINARY,
        format: o.logFormat,
        level: o.logLevel,
        destination: process.stderr,
        isTty: process.stderr.isTTY === true,
      });
      const { sysfs } = await openHost(o.hostRoot, logger);
      const nodeName = o.nodeName ?? terminal.env.NODE_NAME;
      const observeOptions = { cdiDirs: o.cdiDir, ...(nodeName ? { nodeName } : {}) };
      const render = renderOptionsFor(terminal, terminal.env);
      const health = healthAddresses(o);
      const document = async (): Promise<StatusDocument> => {
        const observed = await observeNode(sysfs, observeOptions);
        const view = { ...observed, operands: await withHealth(observed.operands, health) };
        return { ...view, problems: findProblems(view) };
      };
      const frame = async () => {
        const doc = await document();
        exit.code = exitCodeOf(doc.problems);
        return o.output === 'json' ? jsonText(doc) : formatStatus(doc, doc.problems, render);
      };
      if (!o.watch) {
        terminal.write(await frame());
        return;
      }
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      if (terminal.signal) terminal.signal.addEventListener('abort', onSignal, { once: true });
      else for (const s of ['SIGINT', 'SIGTERM'] as const) process.once(s, onSignal);
      try {
        await watchStatus({
          sysfs,
          frame,
          write: terminal.write,
          tty: terminal.isTTY === true && o.output === 'table',
          json: o.output === 'json',
          intervalMs: o.interval,
          signal: stop.signal,
        });
      } finally {
        for (const s of ['SIGINT', 'SIGTERM'] as const) process.off(s, onSignal);
      }
      exit.code = 0; // a watch ended by the user is not a failure
    });
  cli.addCommand(status);
  return cli;
}

/** 0: nothing wrong; 1: at least one error on the node (warnings alone do not fail a script). */
export function exitCodeOf(problems: Problem[]): number {
  return problems.some((p) => p.severity === 'error') ? 1 : 0;
}

/** Runs the CLI; returns the exit code: 0 no error found, 1 the node has an error, 2 bad usage or input. */
export function main(argv: string[], terminal: Terminal = processTerminal()): Promise<number> {
  const exit = { code: 0 };
  return runCli(BINARY, keepExitCodes(program(terminal, exit), terminal.write), argv, exit);
}
