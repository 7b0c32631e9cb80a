// Foundation benchmarks: discovery of a 1024-function node and the kernel simulator's bind.
// Run with `pnpm bench`. Prints a table and writes bench/out/foundation.json at the repository root.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bindDevice, discoverPci, Sysfs, setDriverOverride, unbindDevice } from '@gpucc/hal';
import { type BenchResult, reportBench } from '../../../bench/report.js';
import { openSimulatedSysfs } from '../src/kernel/index.js';
import { createNode } from '../src/node/create.js';

const base = mkdtempSync(path.join(process.platform === 'linux' ? '/dev/shm' : os.tmpdir(), 'gpucc-bench-'));
const results: BenchResult[] = [];

function stats(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return { median: at(0.5), p99: at(0.99), min: sorted[0]! };
}

try {
  // Discovery: 256 cards × 4 functions = 1024 PCI functions.
  const scale = path.join(base, 'scale');
  createNode(scale, 'scale', { gpus: 256, functionsPerCard: 4 });
  const sysfs = new Sysfs(scale);
  const times: number[] = [];
  for (let i = 0; i < 20; i++) {
    sysfs.recorder.reset();
    const t = performance.now();
    const topology = discoverPci(sysfs);
    times.push(performance.now() - t);
    if (topology.devices.length !== 1024) throw new Error(`expected 1024 functions, got ${topology.devices.length}`);
  }
  const d = stats(times);
  results.push({
    name: 'discovery, 1024 PCI functions (median of 20)',
    value: d.median,
    unit: 'ms',
    target: '≤ 100 ms',
  });
  results.push({ name: 'discovery, 1024 PCI functions (best)', value: d.min, unit: 'ms' });
  results.push({ name: 'discovery, host reads per function', value: sysfs.recorder.reads / 1024, unit: 'reads' });

  // Kernel simulator bind of one device: override, unbind, bind, device node.
  const hgx = path.join(base, 'hgx');
  createNode(hgx, 'scale', { gpus: 64, functionsPerCard: 1 });
  const sim = openSimulatedSysfs(hgx);
  const addresses = discoverPci(sim)
    .devices.filter((x) => x.kind === 'gpu')
    .map((x) => x.address);
  const bindTimes: number[] = [];
  for (const address of addresses) {
    const t = performance.now();
    await setDriverOverride(sim, address, 'vfio-pci');
    await unbindDevice(sim, address);
    await bindDevice(sim, address, 'vfio-pci');
    bindTimes.push(performance.now() - t);
    if (!sim.exists(`dev/vfio/${sim.resolveLink(`sys/bus/pci/devices/${address}/iommu_group`)!.split('/').pop()}`)) {
      throw new Error(`no device node for ${address}`);
    }
  }
  const b = stats(bindTimes.slice(8)); // the first binds include JIT warm-up
  results.push({
    name: 'simulated bind of one device (override, unbind, bind, node), median',
    value: b.median,
    unit: 'ms',
    target: '≤ 2 ms',
  });
  results.push({ name: 'simulated bind of one device, p99', value: b.p99, unit: 'ms' });
  results.push({
    name: 'sysfs writes per bound device',
    value: sim.recorder.writes / addresses.length,
    unit: 'writes',
  });
} finally {
  rmSync(base, { recursive: true, force: true });
}

reportBench('foundation', 'gpucc foundation benchmarks', results);
