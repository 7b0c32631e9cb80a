// Foundation benchmarks on `scale` nodes of 8, 64 and 256 GPUs: discovery (4 functions per card, so
// 32, 256 and 1024 PCI functions) and the kernel simulator's bind of one device (1 function per card).
// Run with `pnpm bench`. Prints a table and writes bench/out/foundation.json at the repository root.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bindDevice, discoverPci, HostRoot, setDriverOverride, unbindDevice } from '@gpucc/hal';
import { createNode, openSimulatedHost } from '@gpucc/sim';
import { type BenchResult, reportBench, sized } from '../../../bench/report.js';

const SIZES = [8, 64, 256];
const base = mkdtempSync(path.join(process.platform === 'linux' ? '/dev/shm' : os.tmpdir(), 'gpucc-bench-'));
const results: BenchResult[] = [];

function stats(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return { median: at(0.5), p99: at(0.99), min: sorted[0]! };
}

/** Binds every GPU of a simulated node to vfio-pci; the time of each bind and the writes per device. */
async function bindAll(root: string): Promise<{ times: number[]; writesPerDevice: number }> {
  const sim = openSimulatedHost(root);
  const addresses = discoverPci(sim)
    .devices.filter((x) => x.kind === 'gpu')
    .map((x) => x.address);
  const times: number[] = [];
  for (const address of addresses) {
    const t = performance.now();
    await setDriverOverride(sim, address, 'vfio-pci');
    await unbindDevice(sim, address);
    await bindDevice(sim, address, 'vfio-pci');
    times.push(performance.now() - t);
    if (!sim.exists(`dev/vfio/${sim.resolveLink(`sys/bus/pci/devices/${address}/iommu_group`)!.split('/').pop()}`)) {
      throw new Error(`no device node for ${address}`);
    }
  }
  return { times, writesPerDevice: sim.recorder.writes / addresses.length };
}

try {
  // Discovery: N cards × 4 functions.
  for (const gpus of SIZES) {
    const root = path.join(base, `discovery-${gpus}`);
    createNode(root, 'scale', { gpus, functionsPerCard: 4 });
    const sysfs = new HostRoot(root);
    const times: number[] = [];
    for (let i = 0; i < 20; i++) {
      sysfs.recorder.reset();
      const t = performance.now();
      const topology = discoverPci(sysfs);
      times.push(performance.now() - t);
      if (topology.devices.length !== gpus * 4) {
        throw new Error(`expected ${gpus * 4} functions, got ${topology.devices.length}`);
      }
    }
    const d = stats(times);
    const figure = 'discovery, 4 PCI functions per GPU (median of 20)';
    results.push(sized(figure, gpus, d.median, 'ms', gpus === 256 ? '≤ 100 ms' : undefined));
    results.push(sized('  discovery, best of 20', gpus, d.min, 'ms'));
    results.push(sized('  discovery, host reads per function', gpus, sysfs.recorder.reads / (gpus * 4), 'reads'));
  }

  // Kernel simulator bind of one device: override, unbind, bind, device node. A 64-GPU node first, so
  // that JIT warm-up is not counted at any size; at least 64 binds per size (8 nodes of 8 GPUs).
  const warmUp = path.join(base, 'warm-up');
  createNode(warmUp, 'scale', { gpus: 64, functionsPerCard: 1 });
  await bindAll(warmUp);
  for (const gpus of SIZES) {
    const times: number[] = [];
    const writes: number[] = [];
    for (let n = 0; n < Math.ceil(64 / gpus); n++) {
      const root = path.join(base, `bind-${gpus}-${n}`);
      createNode(root, 'scale', { gpus, functionsPerCard: 1 });
      const run = await bindAll(root);
      times.push(...run.times);
      writes.push(run.writesPerDevice);
    }
    const writesPerDevice = writes.reduce((a, b) => a + b, 0) / writes.length;
    const b = stats(times);
    const figure = 'simulated bind of one device (override, unbind, bind, node), median of ≥ 64';
    results.push(sized(figure, gpus, b.median, 'ms', '≤ 2 ms'));
    results.push(sized('  simulated bind of one device, p99', gpus, b.p99, 'ms'));
    results.push(sized('  sysfs writes per bound device', gpus, writesPerDevice, 'writes', '= 3'));
  }
} finally {
  rmSync(base, { recursive: true, force: true });
}

reportBench('foundation', 'gpucc foundation benchmarks', results);
