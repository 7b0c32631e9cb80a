import path from 'node:path';
import { GpuccError } from '@gpucc/hal';
import { type Command, InvalidArgumentError } from 'commander';
import type { KubeletAllocation, KubeletState } from './fake-kubelet.js';

function count(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a non-negative integer');
  return n;
}

function output(value: string): 'table' | 'json' {
  if (value !== 'table' && value !== 'json') throw new InvalidArgumentError('expected table or json');
  return value;
}

/**
 * `gpucc-sim kubelet DIR` (the fake kubelet, in the foreground), `kubelet-status`, `kubelet-allocate`
 * and `kubelet-restart`, which talk to it over its control socket. gRPC loads only when one runs.
 */
export function registerKubeletCommands(cli: Command, out: (text: string) => void): void {
  cli
    .command('kubelet')
    .description('run a fake kubelet on DIR: Registration on kubelet.sock, dial-back, ListAndWatch, Allocate')
    .argument('<dir>')
    .option('--grace-ms <ms>', 'drop a resource this long after its stream ends (kubelet: 300000)', count)
    .option('--legacy-authority', 'dial plugins with the socket path as :authority (kubelets before 1.26)')
    .action(async (dir: string, o: { graceMs?: number; legacyAuthority?: boolean }) => {
      const { FakeKubelet } = await import('./fake-kubelet.js');
      const { serveControl } = await import('./control.js');
      const kubelet = new FakeKubelet({
        root: path.resolve(dir),
        ...(o.graceMs === undefined ? {} : { endpointGraceMs: o.graceMs }),
        legacyAuthority: o.legacyAuthority === true,
        statusFile: true,
        log: (line) => out(`kubelet: ${line}\n`),
      });
      await kubelet.start();
      const control = await serveControl(kubelet);
      await new Promise<void>((resolve) => {
        process.once('SIGTERM', resolve);
        process.once('SIGINT', resolve);
      });
      await control.close();
      await kubelet.stop();
      out('kubelet: stopped\n');
    });

  cli
    .command('kubelet-status')
    .description('print what the running fake kubelet of DIR sees: capacity and allocatable per resource')
    .argument('<dir>')
    .option('--output <format>', 'table or json', output, 'table' as const)
    .action(async (dir: string, o: { output: 'table' | 'json' }) => {
      const { controlRequest } = await import('./control.js');
      const { formatKubeletState } = await import('./format.js');
      const state = (await controlRequest(dir, 'GET', '/status')) as KubeletState;
      out(o.output === 'json' ? `${JSON.stringify(state, null, 2)}\n` : formatKubeletState(state));
    });

  cli
    .command('kubelet-allocate')
    .description('allocate N healthy devices of RESOURCE as the kubelet does at pod admission; prints the response')
    .argument('<dir>')
    .argument('<resource>', 'e.g. nvidia.com/pgpu')
    .argument('<n>', 'number of devices', count)
    .action(async (dir: string, resource: string, n: number) => {
      if (n < 1) throw new GpuccError('ERR_GPUCC_USAGE', 'allocate at least one device', { hint: 'N ≥ 1' });
      const { controlRequest } = await import('./control.js');
      const allocation = (await controlRequest(dir, 'POST', '/allocate', { resource, count: n })) as KubeletAllocation;
      out(`${JSON.stringify(allocation, null, 2)}\n`);
    });

  cli
    .command('kubelet-release')
    .description(
      "give back RESOURCE's allocated devices (all, or the allocation holding ID...), as when a pod is deleted",
    )
    .argument('<dir>')
    .argument('<resource>', 'e.g. nvidia.com/pgpu')
    .argument('[ids...]', 'device IDs of the allocation to release')
    .action(async (dir: string, resource: string, ids: string[]) => {
      const { controlRequest } = await import('./control.js');
      const released = (await controlRequest(dir, 'POST', '/release', {
        resource,
        ...(ids.length ? { ids } : {}),
      })) as KubeletAllocation[];
      out(
        `released ${released.length} allocation(s): ${released.map((a) => a.deviceIds.join(',')).join(' ') || 'none'}\n`,
      );
    });

  cli
    .command('kubelet-restart')
    .description('restart the fake kubelet of DIR: close streams, delete the sockets, listen again')
    .argument('<dir>')
    .option('--delay-ms <ms>', 'wait this long before listening again', count)
    .action(async (dir: string, o: { delayMs?: number }) => {
      const { controlRequest } = await import('./control.js');
      const state = (await controlRequest(dir, 'POST', '/restart', { delayMs: o.delayMs ?? 0 })) as KubeletState;
      out(`kubelet restarted (restarts: ${state.restarts})\n`);
    });
}
