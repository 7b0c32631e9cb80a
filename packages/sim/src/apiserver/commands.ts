import path from 'node:path';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { readNodeSpec } from '../node/state.js';
import type { JsonObject } from './objects.js';
import { startApiServer } from './server.js';
import { ensureStore, listEvents, nodeLabels, parseLabelArgs, setLabels } from './store.js';

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65_535) throw new InvalidArgumentError('expected a port, 0-65535');
  return n;
}

function positive(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

/** `kubectl get events` columns: age-free, since the simulator's events are read after the fact. */
export function formatEvents(events: readonly JsonObject[]): string {
  const rows = events.map((e) => {
    const object = (e.involvedObject ?? e.regarding ?? {}) as JsonObject;
    const time = String(e.lastTimestamp ?? e.eventTime ?? (e.metadata as JsonObject).creationTimestamp ?? '');
    return [
      time,
      String(e.type ?? ''),
      String(e.reason ?? ''),
      `${String(object.kind ?? '').toLowerCase()}/${String(object.name ?? '')}`,
      String(e.message ?? e.note ?? ''),
    ];
  });
  const head = ['TIME', 'TYPE', 'REASON', 'OBJECT', 'MESSAGE'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.slice(0, 1000).map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(Math.min(widths[i]!, 40))))
      .join('  ')
      .trimEnd();
  return `${[line(head), ...rows.map(line)].join('\n')}\n`;
}

/** `gpucc-sim apiserver`, `gpucc-sim label` and `gpucc-sim events` (the fake Kubernetes API server). */
export function registerApiServerCommands(cli: Command, out: (text: string) => void): void {
  cli
    .command('apiserver')
    .description(
      'serve a fake Kubernetes API server for the node in DIR until SIGINT/SIGTERM; writes DIR/.gpucc-sim/kubeconfig',
    )
    .argument('<dir>')
    .option('--node-name <name>', 'the Kubernetes node name (default gpucc-sim-node, or the one already stored)')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on (0: any free port)', port, 0)
    .option('--history <n>', 'node changes kept for watches; older resourceVersions get 410 Gone', positive)
    .option('--no-operator-labels', 'create the node without the GPU Operator and NFD labels')
    .option('--quiet', 'do not print one line per request')
    .action(
      async (
        dir: string,
        o: {
          nodeName?: string;
          host: string;
          port: number;
          history?: number;
          operatorLabels: boolean;
          quiet?: boolean;
        },
      ) => {
        const root = path.resolve(dir);
        readNodeSpec(root);
        const server = await startApiServer({
          root,
          host: o.host,
          port: o.port,
          operatorLabels: o.operatorLabels,
          ...(o.nodeName ? { nodeName: o.nodeName } : {}),
          ...(o.history ? { historyLimit: o.history } : {}),
          ...(o.quiet
            ? {}
            : {
                onRequest: (r) =>
                  out(
                    `${new Date().toISOString()} ${r.method} ${r.path}${Object.keys(r.query).length ? `?${new URLSearchParams(r.query)}` : ''} ${r.status}\n`,
                  ),
              }),
        });
        out(`fake Kubernetes API server for node ${server.nodeName} at ${server.url}\n`);
        out(`kubeconfig: ${server.kubeconfigPath}\n`);
        await new Promise<void>((resolve) => {
          process.once('SIGINT', () => resolve());
          process.once('SIGTERM', () => resolve());
        });
        await server.close();
        out('fake Kubernetes API server stopped\n');
      },
    );

  cli
    .command('label')
    .description('set (key=value) or remove (key-) labels of the simulated Kubernetes node; without any, print them')
    .argument('<dir>')
    .argument('[changes...]', 'key=value or key-')
    .option('--json', 'print the labels as JSON')
    .action((dir: string, changes: string[], o: { json?: boolean }) => {
      const root = path.resolve(dir);
      readNodeSpec(root);
      const parsed = parseLabelArgs(changes);
      ensureStore(root);
      if (Object.keys(parsed).length > 0) setLabels(root, parsed);
      const labels = nodeLabels(root);
      if (o.json) {
        out(`${JSON.stringify(labels, null, 2)}\n`);
        return;
      }
      if (Object.keys(parsed).length > 0) {
        for (const [key, value] of Object.entries(parsed))
          out(value === null ? `${key} removed\n` : `${key}=${value}\n`);
        return;
      }
      for (const key of Object.keys(labels).sort()) out(`${key}=${labels[key]}\n`);
    });

  cli
    .command('events')
    .description('print the Kubernetes events posted to the fake API server of DIR, oldest first')
    .argument('<dir>')
    .option('--reason <reason>', 'only events with this reason')
    .option('--json', 'one JSON object per line')
    .action((dir: string, o: { reason?: string; json?: boolean }) => {
      const root = path.resolve(dir);
      readNodeSpec(root);
      const events = listEvents(root).filter((e) => o.reason === undefined || e.reason === o.reason);
      if (o.json) for (const e of events) out(`${JSON.stringify(e)}\n`);
      else out(formatEvents(events));
    });
}
