#!/usr/bin/env node
// The demo on a simulated node: what gpucc's core sees and does on an HGX H100 host, step by step.
// Usage: node scripts/demo.mjs [--keep] [--profile NAME]   (npm run demo does the set-up first)
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  bindDevice,
  cardFunctions,
  currentDriver,
  detectHostTee,
  detectVfioModel,
  discoverPci,
  GpuccError,
  loadPciIds,
  resourceNamingFor,
  runTool,
  setDriverOverride,
  unbindDevice,
} from '@gpucc/hal';
import { createNode, formatInspect, injectFault, inspectHost, installFakeTools, openSimulatedSysfs } from '@gpucc/sim';

const args = process.argv.slice(2);
const keep = args.includes('--keep');
const profile = args.includes('--profile') ? args[args.indexOf('--profile') + 1] : 'hgx-h100-8';
const started = performance.now();
let failures = 0;

function step(title) {
  process.stdout.write(`\n[${((performance.now() - started) / 1000).toFixed(2)}s] ${title}\n`);
}
function check(ok, what) {
  process.stdout.write(`  ${ok ? 'ok  ' : 'FAIL'} ${what}\n`);
  if (!ok) failures++;
}

const base = mkdtempSync(path.join(process.platform === 'linux' ? '/dev/shm' : os.tmpdir(), 'gpucc-demo-'));
const root = path.join(base, 'node');
try {
  step(`create a simulated ${profile} node`);
  const { node } = createNode(root, profile, {}, installFakeTools);
  const sysfs = openSimulatedSysfs(root);
  check(node.devices.length > 0, `${node.devices.length} PCI functions laid out under ${root}`);

  step('discover it as gpucc does on a real host');
  process.stdout.write(`${formatInspect(inspectHost(sysfs)).trimEnd().replace(/^/gm, '  ')}\n`);
  const topology = discoverPci(sysfs);
  const gpus = topology.devices.filter((d) => d.kind === 'gpu');
  check(
    gpus.length > 0,
    `${gpus.length} GPUs, TEE ${detectHostTee(sysfs)}, VFIO model ${detectVfioModel(sysfs).model}`,
  );
  const naming = resourceNamingFor({ deviceType: 'gpu', pciDeviceId: gpus[0].device, pciIds: loadPciIds(sysfs) });
  check(naming.resourceName === 'nvidia.com/pgpu', `resource name = CDI kind = ${naming.resourceName}`);

  const gpu = gpus[0];
  const functions = cardFunctions(topology, gpu.address);
  step(`bind ${gpu.address} and its card (${functions.length} function(s)) to vfio-pci: override, unbind, bind`);
  const counted = sysfs.withRecorder();
  for (const address of functions) {
    await setDriverOverride(counted, address, 'vfio-pci');
    await unbindDevice(counted, address);
    await bindDevice(counted, address, 'vfio-pci');
  }
  check(currentDriver(sysfs, gpu.address) === 'vfio-pci', `${gpu.address} is on vfio-pci`);
  check(counted.recorder.writes === 3 * functions.length, `${counted.recorder.writes} sysfs writes (3 per function)`);
  check(sysfs.exists(`dev/vfio/${gpu.iommuGroup}`), `/dev/vfio/${gpu.iommuGroup} appeared`);

  step('query and switch its CC mode with the (fake) gpu-admin-tools, applied by a PCI reset');
  const tool = path.join(root, 'opt/gpu-admin-tools/nvidia_gpu_tools.py');
  const bdf = `--gpu-bdf=${gpu.address}`;
  // Like the real tool, the fake logs on stderr (Python logging) and prints the topology on stdout.
  const query = async () =>
    (await runTool({ command: tool, args: [bdf, '--query-cc-mode'], timeoutMs: 20_000 })).stderr;
  check(/CC mode is off/.test(await query()), 'CC mode is off');
  const set = await runTool({
    command: tool,
    args: [bdf, '--set-cc-mode=on', '--reset-after-cc-mode-switch'],
    timeoutMs: 20_000,
  });
  process.stdout.write(
    set.stderr
      .split('\n')
      .filter((l) => / INFO /.test(l))
      .map((l) => `  | ${l}\n`)
      .join(''),
  );
  check(/CC mode is on/.test(await query()), 'CC mode is on after the reset');

  step('inject a fault: the next GPU’s unbind fails with EBUSY (a process holds it)');
  const second = gpus[1] ?? gpus[0];
  await injectFault(root, { kind: 'unbind-error', device: second.address, errno: 'EBUSY', times: 1 });
  try {
    await unbindDevice(sysfs, second.address);
    check(false, 'the unbind should have failed');
  } catch (error) {
    check(
      error instanceof GpuccError && error.code === 'ERR_GPUCC_UNBIND_FAILED',
      error.describe().replace(/\n/g, '\n       '),
    );
  }
  check(
    currentDriver(sysfs, second.address) !== undefined,
    `${second.address} kept its driver (${currentDriver(sysfs, second.address)})`,
  );
} catch (error) {
  failures++;
  process.stderr.write(`demo failed: ${error instanceof GpuccError ? error.describe() : error.stack}\n`);
} finally {
  if (keep) {
    process.stdout.write(
      `\nkept the node at ${root}\n  try: pnpm exec gpucc-sim inspect ${root}\n       pnpm exec gpucc-sim writes ${root}\n`,
    );
  } else {
    rmSync(base, { recursive: true, force: true });
  }
}
process.stdout.write(
  `\n${failures === 0 ? 'demo passed' : `demo FAILED (${failures} check(s))`} in ${((performance.now() - started) / 1000).toFixed(2)}s\n`,
);
process.exitCode = failures === 0 ? 0 : 1;
