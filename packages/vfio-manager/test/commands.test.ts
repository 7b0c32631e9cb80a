import { createLogger } from '@gpucc/daemon';
import { currentDriver, currentOverride, discoverPci, type HostRoot, parsePciAddress } from '@gpucc/hal';
import {
  breakAttribute,
  devPath,
  injectFault,
  loadDriver,
  openSimulatedHost,
  readNodeSpec,
  Tree,
  writeNodeSpec,
} from '@gpucc/sim';
import { silentLogger } from '@gpucc/testbed/fixtures';
import { simNode } from '@gpucc/testbed/vitest';
import { describe, expect, it } from 'vitest';
import type { ApplyOptions } from '../src/apply.js';
import { bind, exitCodeOf, release, status } from '../src/commands.js';
import { observe } from '../src/observe.js';
import { planBind } from '../src/plan.js';
import { readState, STATE_FILE } from '../src/state.js';

/** The vGPU-host NVIDIA driver: the only build with an unbind lock (docs/facts/real-hosts.md#the-nvidia-unbind-lock). */
const VGPU_HOST = { nvidiaDriver: 'vgpu-host' } as const;

const options = (extra: Partial<ApplyOptions> = {}): ApplyOptions => ({
  logger: silentLogger(),
  loadModules: false,
  modprobe: {},
  unbindTimeoutMs: 2_000,
  deviceNodeTimeoutMs: 2_000,
  ...extra,
});
const ALL = { selection: { all: true as const }, nvswitches: false, allowForeignGroupMembers: false, dryRun: false };

function drivers(sysfs: HostRoot) {
  return Object.fromEntries(
    discoverPci(sysfs)
      .devices.filter((d) => d.vendor === 0x10de)
      .map((d) => [d.address, d.driver ?? null]),
  );
}

/** What the NVIDIA driver's unbind lock of a GPU reads: "1" while taken, "0" free, undefined off nvidia. */
const unbindLock = (sysfs: HostRoot, gpu: string) =>
  sysfs.readOptional(`proc/driver/nvidia/gpus/${gpu}/unbindLock`)?.trim();

/** Every log line, parsed, with `onLine` called on each as it is written (synchronously). */
function capturedLogs(onLine: (line: Record<string, unknown>) => void = () => {}) {
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger({
    name: 'test',
    format: 'json',
    level: 'info',
    destination: {
      write(text: string) {
        const line = JSON.parse(text) as Record<string, unknown>;
        lines.push(line);
        onLine(line);
      },
    },
  });
  return { logger, lines, events: (event: string) => lines.filter((l) => l.event === event) };
}

/** Moves `address` into the IOMMU group of `into`, as on a PCIe switch without ACS. */
function shareGroup(root: string, address: string, into: string) {
  const node = readNodeSpec(root);
  const device = node.devices.find((d) => d.address === address)!;
  const group = node.devices.find((d) => d.address === into)!.iommuGroup!;
  const tree = new Tree(root, { replaceFiles: true });
  tree.remove(`sys/kernel/iommu_groups/${device.iommuGroup}/devices/${address}`);
  device.iommuGroup = group;
  tree.link(`${devPath(device)}/iommu_group`, `sys/kernel/iommu_groups/${group}`);
  tree.link(`sys/kernel/iommu_groups/${group}/devices/${address}`, devPath(device));
  writeNodeSpec(root, node);
}

/** No device may keep a driver_override naming a driver it is not bound to. */
function strayOverrides(sysfs: HostRoot) {
  return discoverPci(sysfs)
    .devices.filter((d) => d.driverOverride && d.driverOverride !== d.driver)
    .map((d) => d.address);
}

describe('vfio-manager bind', () => {
  it('hgx-h100-8: binds the 8 GPUs with 3 writes each, leaves the NVSwitches, and a second run writes nothing', async () => {
    const { sysfs } = simNode('hgx-h100-8', VGPU_HOST);
    const s = sysfs.withRecorder();
    const result = await bind(s, ALL, options());
    expect(exitCodeOf(result)).toBe(0);
    const after = discoverPci(s);
    expect(after.devices.filter((d) => d.kind === 'gpu').map((d) => d.driver)).toEqual(Array(8).fill('vfio-pci'));
    expect(after.devices.filter((d) => d.kind === 'nvswitch').map((d) => d.driver)).toEqual(
      Array(4).fill('nvidia-nvswitch'),
    );
    expect(s.recorder.snapshot().writesByAttribute).toMatchObject({
      driver_override: 8,
      unbind: 8,
      bind: 8,
      unbindLock: 8,
    });
    // 3 sysfs writes and 1 unbind lock per GPU; the state file 3 times: the locks about to be taken, the
    // previous drivers, the results
    expect(s.recorder.writes).toBe(8 * 3 + 8 + 3);
    expect(Object.values(readState(s).devices).every((r) => r.phase === 'bound')).toBe(true);
    for (const gpu of after.devices.filter((d) => d.kind === 'gpu'))
      expect(s.exists(`dev/vfio/${gpu.iommuGroup}`)).toBe(true);

    const again = sysfs.withRecorder();
    const second = await bind(again, ALL, options());
    expect(exitCodeOf(second)).toBe(0);
    expect(again.recorder.writes).toBe(0);
    expect(second.report!.results.every((r) => r.outcome === 'unchanged')).toBe(true);
  });

  it('hgx-h100-8 with NVSwitches: 12 devices on vfio-pci, previous drivers recorded, restore returns each', async () => {
    const { sysfs } = simNode('hgx-h100-8');
    const before = drivers(sysfs);
    expect(exitCodeOf(await bind(sysfs, { ...ALL, nvswitches: true }, options()))).toBe(0);
    const t = discoverPci(sysfs);
    expect(t.devices.filter((d) => d.kind === 'nvswitch' && d.driver === 'vfio-pci')).toHaveLength(4);
    const state = readState(sysfs);
    expect(Object.values(state.devices).filter((r) => r.previousDriver === 'nvidia-nvswitch')).toHaveLength(4);
    expect(Object.values(state.devices).every((r) => r.phase === 'bound')).toBe(true);

    const restored = await release(
      sysfs,
      { selection: { all: true }, nvswitches: true, restore: true, dryRun: false },
      options(),
    );
    expect(exitCodeOf(restored)).toBe(0);
    expect(drivers(sysfs)).toEqual(before);
    expect(readState(sysfs).devices).toEqual({});
    expect(strayOverrides(sysfs)).toEqual([]);
  });

  it('workstation-mixed: binds all four functions of the VGA card; refuses the group with the foreign NIC, naming it', async () => {
    const { sysfs } = simNode('workstation-mixed', VGPU_HOST);
    const s = sysfs.withRecorder();
    const result = await bind(s, ALL, options());
    expect(exitCodeOf(result)).toBe(1);
    for (const fn of ['0000:01:00.0', '0000:01:00.1', '0000:01:00.2', '0000:01:00.3']) {
      expect(currentDriver(s, parsePciAddress(fn))).toBe('vfio-pci');
    }
    const refused = result.report!.results.filter((r) => r.outcome === 'refused');
    expect(refused.map((r) => r.address)).toContain('0000:42:00.0');
    expect(refused[0]!.error).toMatchObject({ code: 'ERR_GPUCC_FOREIGN_GROUP_MEMBER' });
    expect(String(refused[0]!.error!.message)).toMatch(/0000:43:00\.0 \(15b3:1021\) on mlx5_core/);
    expect(currentDriver(s, parsePciAddress('0000:42:00.0'))).toBe('nvidia'); // nothing written for that group
    expect(currentDriver(s, parsePciAddress('0000:43:00.0'))).toBe('mlx5_core');
    expect(s.recorder.writeLog.some((w) => w.path.includes('0000:42:00.0') || w.value.includes('0000:42:00.0'))).toBe(
      false,
    );
    expect(unbindLock(s, '0000:42:00.0')).toBe('0'); // a refused group takes no lock
  });

  it('plan: a refused foreign member is not said to be allowed; with the flag it is', async () => {
    const { sysfs } = simNode('workstation-mixed');
    const nic = (allow: boolean) =>
      planBind(observe(sysfs), { all: true }, { nvswitches: false, allowForeignGroupMembers: allow })
        .groups.flatMap((g) => g.steps)
        .find((st) => st.address === '0000:43:00.0')!;
    expect(nic(false).reason).toBe('foreign member of the IOMMU group on a host driver: the group is refused');
    expect(nic(true).reason).toBe('foreign member of the IOMMU group (allowed by --allow-foreign-group-members)');
  });

  it('workstation-mixed, NIC parked on pci-stub: the group is viable, bound, and status says so (one rule)', async () => {
    const { sysfs, root } = simNode('workstation-mixed');
    const node = readNodeSpec(root);
    const stub = { name: 'pci-stub', module: 'pci_stub', match: [], vfio: false, loaded: false };
    node.drivers.push(stub);
    loadDriver(new Tree(root, { replaceFiles: true }), stub);
    writeNodeSpec(root, node);
    const sim = openSimulatedHost(root);
    await sim.write('sys/bus/pci/devices/0000:43:00.0/driver_override', 'pci-stub');
    await sim.write('sys/bus/pci/drivers/mlx5_core/unbind', '0000:43:00.0');
    await sim.write('sys/bus/pci/drivers/pci-stub/bind', '0000:43:00.0');
    expect(currentDriver(sysfs, parsePciAddress('0000:43:00.0'))).toBe('pci-stub');

    const result = await bind(sysfs, { ...ALL, selection: { devices: ['0000:42:00.0'] } }, options());
    expect(exitCodeOf(result)).toBe(0);
    expect(currentDriver(sysfs, parsePciAddress('0000:42:00.0'))).toBe('vfio-pci');
    expect(currentDriver(sysfs, parsePciAddress('0000:43:00.0'))).toBe('pci-stub'); // left as it is
    const gpu = status(sysfs, 'vfio', ALL).devices.find((d) => d.address === '0000:42:00.0')!;
    expect(gpu.groupViable).toBe(true);
  });

  it('a rerun after a kill that left phase "binding" on converged devices marks them bound, with no sysfs write', async () => {
    const { sysfs } = simNode('hgx-h100-8');
    await bind(sysfs, ALL, options());
    // what a run killed after its last bind, before its final state write, leaves behind
    const state = readState(sysfs);
    for (const rec of Object.values(state.devices)) rec.phase = 'binding';
    await sysfs.writeFileAtomic(STATE_FILE, JSON.stringify(state), 0o644);
    const s = sysfs.withRecorder();
    expect(exitCodeOf(await bind(s, ALL, options()))).toBe(0);
    expect(s.recorder.writeLog.filter((w) => !w.path.startsWith('var/'))).toEqual([]);
    expect(Object.values(readState(s).devices).map((r) => r.phase)).toEqual(Array(8).fill('bound'));
    const again = sysfs.withRecorder();
    await bind(again, ALL, options());
    expect(again.recorder.writes).toBe(0);
  });

  it('workstation-mixed with --allow-foreign-group-members binds the NIC too, never the bridges', async () => {
    const { sysfs } = simNode('workstation-mixed');
    const result = await bind(sysfs, { ...ALL, allowForeignGroupMembers: true }, options());
    expect(exitCodeOf(result)).toBe(0);
    expect(currentDriver(sysfs, parsePciAddress('0000:43:00.0'))).toBe('vfio-pci');
    expect(currentDriver(sysfs, parsePciAddress('0000:41:00.0'))).toBe('pcieport');
  });

  it('iommufd without CONFIG_VFIO_DEVICE_CDEV: binds both without waiting for cdevs that never come; their group nodes are the nodes', async () => {
    const { sysfs } = simNode('iommufd-h200-2', { vfioCdev: false });
    const result = await bind(sysfs, ALL, options());
    expect(exitCodeOf(result)).toBe(0);
    const report = status(sysfs, 'vfio', { ...ALL });
    expect(report.vfioModel).toBe('iommufd'); // /dev/iommu is there
    expect(report.converged).toBe(true);
    expect(report.devices.filter((d) => d.kind === 'gpu').map((d) => [d.deviceNode, d.deviceNodePresent])).toEqual([
      ['/dev/vfio/43', true],
      ['/dev/vfio/47', true],
    ]);
  });

  it('iommufd-h200-2: binds both and waits for their /dev/vfio/devices/vfioN', async () => {
    const { sysfs } = simNode('iommufd-h200-2');
    expect(exitCodeOf(await bind(sysfs, ALL, options()))).toBe(0);
    const report = status(sysfs, 'vfio', { ...ALL });
    expect(report.vfioModel).toBe('iommufd');
    expect(report.converged).toBe(true);
    expect(report.devices.filter((d) => d.kind === 'gpu').map((d) => d.deviceNode)).toEqual([
      '/dev/vfio/devices/vfio0',
      '/dev/vfio/devices/vfio1',
    ]);
  });

  it('no-iommu: refuses with the IOMMU hint and writes nothing', async () => {
    const { sysfs } = simNode('no-iommu');
    const s = sysfs.withRecorder();
    const result = await bind(s, ALL, options());
    expect(exitCodeOf(result)).toBe(1);
    expect(result.report!.results[0]).toMatchObject({ outcome: 'refused', error: { code: 'ERR_GPUCC_IOMMU_OFF' } });
    expect(String(result.report!.results[0]!.error!.hint)).toMatch(/amd_iommu=on or intel_iommu=on/);
    expect(s.recorder.writes).toBe(0);
  });

  it('a dry run plans the writes and performs none', async () => {
    const { sysfs } = simNode('h100-pcie-1');
    const s = sysfs.withRecorder();
    const result = await bind(s, { ...ALL, dryRun: true }, options());
    expect(result.report).toBeUndefined();
    expect(result.plan.groups[0]!.steps[0]!.writes.map((w) => w.path)).toEqual([
      '/sys/bus/pci/devices/0000:41:00.0/driver_override',
      '/sys/bus/pci/drivers/nvidia/unbind',
      '/sys/bus/pci/drivers/vfio-pci/bind',
    ]);
    expect(s.recorder.writes).toBe(0);
  });
});

describe('vfio-manager selection and input', () => {
  it.each([
    ['0000:13:00', 'ERR_GPUCC_INVALID_PCI_ADDRESS'],
    ['0000:99:00.0', 'ERR_GPUCC_DEVICE_NOT_FOUND'],
    ['0000:10:01.1', 'ERR_GPUCC_NOT_A_TARGET'], // a bridge
    ['0000:07:00.0', 'ERR_GPUCC_NOT_A_TARGET'], // an NVSwitch without --nvswitches
  ])('refuses --device %s with %s before any write', async (device, code) => {
    const { sysfs } = simNode('hgx-h100-8');
    const s = sysfs.withRecorder();
    await expect(bind(s, { ...ALL, selection: { devices: [device] } }, options())).rejects.toMatchObject({ code });
    expect(s.recorder.writes).toBe(0);
  });

  it('refuses a bridge as a bridge, even an NVIDIA one', async () => {
    const { sysfs, root } = simNode('hgx-h100-8');
    breakAttribute(root, '0000:10:01.1', 'vendor', '0x10de\n');
    await expect(bind(sysfs, { ...ALL, selection: { devices: ['0000:10:01.1'] } }, options())).rejects.toMatchObject({
      code: 'ERR_GPUCC_NOT_A_TARGET',
      message: expect.stringMatching(/cannot be selected: it is a PCI bridge$/),
      hint: expect.stringMatching(/select the GPU behind it/),
    });
  });

  it('refuses another vendor’s device and a companion function with a hint naming the GPU', async () => {
    const { sysfs } = simNode('workstation-mixed');
    await expect(bind(sysfs, { ...ALL, selection: { devices: ['0000:43:00.0'] } }, options())).rejects.toMatchObject({
      code: 'ERR_GPUCC_NOT_A_TARGET',
    });
    await expect(bind(sysfs, { ...ALL, selection: { devices: ['0000:01:00.1'] } }, options())).rejects.toMatchObject({
      hint: expect.stringMatching(/select the GPU 0000:01:00\.0/),
    });
  });

  it('a missing VFIO module is refused with the --load-modules hint; with it, modprobe loads it and bind converges', async () => {
    const { sysfs, root } = simNode('h100-pcie-1', { vfioLoaded: false });
    const refused = await bind(sysfs, ALL, options());
    expect(exitCodeOf(refused)).toBe(1);
    expect(refused.report!.results[0]!.error).toMatchObject({ code: 'ERR_GPUCC_MODPROBE_DISABLED' });
    const loaded = await bind(
      sysfs,
      ALL,
      options({ loadModules: true, modprobe: { path: `${root}/usr/sbin/modprobe` } }),
    );
    expect(exitCodeOf(loaded)).toBe(0);
    expect(currentDriver(sysfs, parsePciAddress('0000:41:00.0'))).toBe('vfio-pci');
  });
});

describe('vfio-manager faults', () => {
  const GPU = parsePciAddress('0000:13:00.0');

  it('unbind EBUSY: exit 1, the device stays on nvidia, no override left behind, other GPUs still bound', async () => {
    const { sysfs, root } = simNode('hgx-h100-8', VGPU_HOST);
    await injectFault(root, { kind: 'unbind-error', device: GPU, errno: 'EBUSY' });
    const result = await bind(sysfs, ALL, options());
    expect(exitCodeOf(result)).toBe(1);
    expect(result.report!.results.find((r) => r.address === GPU)).toMatchObject({
      outcome: 'failed',
      error: { code: 'ERR_GPUCC_UNBIND_FAILED' },
    });
    expect(currentDriver(sysfs, GPU)).toBe('nvidia');
    expect(currentOverride(sysfs, GPU)).toBeUndefined();
    expect(strayOverrides(sysfs)).toEqual([]);
    expect(Object.values(drivers(sysfs)).filter((d) => d === 'vfio-pci')).toHaveLength(7);
    expect(readState(sysfs).devices[GPU]).toBeUndefined(); // back where it started: nothing to remember
    expect(unbindLock(sysfs, GPU)).toBe('0'); // still on nvidia: the host's CUDA users can open it again
  });

  it('a failing group gives back the unbind lock of each GPU left on nvidia, and logs it', async () => {
    const { sysfs, root } = simNode('hgx-h100-8', VGPU_HOST);
    await injectFault(root, { kind: 'unbind-error', device: GPU, errno: 'EBUSY' });
    const logs = capturedLogs();
    const s = sysfs.withRecorder();
    const result = await bind(s, ALL, options({ logger: logs.logger }));
    expect(exitCodeOf(result)).toBe(1);
    expect(unbindLock(s, GPU)).toBe('0');
    expect(logs.events('bind.unbind_lock_released')).toEqual([
      expect.objectContaining({ device: GPU, group: result.report!.results.find((r) => r.address === GPU)!.group }),
    ]);
    // the release is the only extra write: 8 locks taken, 1 given back
    expect(s.recorder.writeLog.filter((w) => w.path.endsWith('/unbindLock')).map((w) => w.value)).toEqual([
      ...Array(8).fill('1'),
      '0',
    ]);
  });

  it('a later check of the group failing (SR-IOV on a card function) leaves the GPU on nvidia with its lock free', async () => {
    const { sysfs, root } = simNode('workstation-mixed', VGPU_HOST);
    breakAttribute(root, '0000:01:00.3', 'sriov_totalvfs', '4\n');
    breakAttribute(root, '0000:01:00.3', 'sriov_numvfs', '2\n');
    const s = sysfs.withRecorder();
    const result = await bind(s, { ...ALL, selection: { devices: ['0000:01:00.0'] } }, options());
    expect(exitCodeOf(result)).toBe(1);
    expect(result.report!.results[0]!.error).toMatchObject({ code: 'ERR_GPUCC_SRIOV_ENABLED' });
    expect(currentDriver(s, parsePciAddress('0000:01:00.0'))).toBe('nvidia');
    expect(unbindLock(s, '0000:01:00.0')).toBe('0');
    expect(s.recorder.writeLog.filter((w) => w.path.startsWith('sys/'))).toEqual([]);
  });

  it('two GPUs in one group, the second one’s lock refused: the first one’s lock is given back', async () => {
    const { sysfs, root } = simNode('hgx-h100-8', VGPU_HOST);
    shareGroup(root, '0000:23:00.0', '0000:13:00.0');
    await injectFault(root, { kind: 'unbind-lock-held', device: '0000:23:00.0' });
    const logs = capturedLogs();
    const result = await bind(sysfs, ALL, options({ logger: logs.logger }));
    expect(exitCodeOf(result)).toBe(1);
    expect(result.report!.results.find((r) => r.address === GPU)!.error).toMatchObject({
      code: 'ERR_GPUCC_DEVICE_IN_USE',
    });
    for (const gpu of [GPU, '0000:23:00.0']) {
      expect(currentDriver(sysfs, parsePciAddress(gpu))).toBe('nvidia');
      expect(unbindLock(sysfs, gpu)).toBe('0');
    }
    expect(logs.events('bind.unbind_lock_released').map((l) => l.device)).toEqual([GPU]);
    expect(Object.values(drivers(sysfs)).filter((d) => d === 'vfio-pci')).toHaveLength(6);
  });

  it('interrupted (SIGTERM) after the first group: the groups not started stay on nvidia with their locks free', async () => {
    const { sysfs } = simNode('hgx-h100-8', VGPU_HOST);
    const stop = new AbortController();
    const logs = capturedLogs((l) => {
      if (l.event === 'bind.device') stop.abort();
    });
    const s = sysfs.withRecorder();
    const result = await bind(s, ALL, options({ logger: logs.logger, signal: stop.signal }));
    expect(exitCodeOf(result)).toBe(1);
    const gpus = discoverPci(s).devices.filter((d) => d.kind === 'gpu');
    expect(gpus.map((d) => d.driver)).toEqual(['vfio-pci', ...Array(7).fill('nvidia')]);
    for (const gpu of gpus.slice(1)) {
      expect(result.report!.results.find((r) => r.address === gpu.address)!.error).toMatchObject({
        code: 'ERR_GPUCC_INTERRUPTED',
      });
      expect(unbindLock(s, gpu.address)).toBe('0');
    }
    expect(logs.events('bind.unbind_lock_released')).toHaveLength(7);
    expect(s.recorder.writeLog.filter((w) => w.path.startsWith('sys/'))).toHaveLength(3);
  });

  it('an unbind that hangs fails at the deadline; no store follows it to that device while it is blocked', async () => {
    const { sysfs, root } = simNode('h100-pcie-1');
    const gpu = parsePciAddress('0000:41:00.0');
    await injectFault(root, { kind: 'unbind-hang', device: gpu });
    const result = await bind(sysfs, ALL, options({ unbindTimeoutMs: 50 }));
    expect(exitCodeOf(result)).toBe(1);
    expect(String(result.report!.results[0]!.error!.message)).toMatch(/did not return within 50 ms/);
    // The rollback's store would queue behind the blocked unbind under the kernel's device_lock
    // (issue 13): it is refused, so the override stays until the unbind returns and a reconcile runs.
    expect(strayOverrides(sysfs)).toEqual([gpu]);
    const again = await bind(sysfs, ALL, options({ unbindTimeoutMs: 50 }));
    expect(JSON.stringify(again.report!.results)).toContain('is still blocked in the kernel');
  });

  it('a failing bind rolls the whole group back: every function of the card returns to its driver', async () => {
    const { sysfs, root } = simNode('workstation-mixed');
    const before = drivers(sysfs);
    await injectFault(root, { kind: 'bind-error', device: '0000:01:00.2', errno: 'EINVAL', times: 1 });
    const result = await bind(sysfs, { ...ALL, selection: { devices: ['0000:01:00.0'] } }, options());
    expect(exitCodeOf(result)).toBe(1);
    const outcomes = Object.fromEntries(result.report!.results.map((r) => [r.address, r.outcome]));
    expect(outcomes).toEqual({
      '0000:01:00.0': 'rolled-back',
      '0000:01:00.1': 'rolled-back',
      '0000:01:00.2': 'failed',
      '0000:01:00.3': 'failed',
    });
    expect(drivers(sysfs)).toEqual(before);
    expect(strayOverrides(sysfs)).toEqual([]);
  });

  it('a device node that never appears: exit 1 with the timeout code; the binding stays, with its override', async () => {
    const { sysfs, root } = simNode('h100-pcie-1');
    const gpu = parsePciAddress('0000:41:00.0');
    await injectFault(root, { kind: 'devnode-never', device: gpu });
    const result = await bind(sysfs, ALL, options({ deviceNodeTimeoutMs: 100 }));
    expect(exitCodeOf(result)).toBe(1);
    expect(result.report!.results[0]!.error).toMatchObject({ code: 'ERR_GPUCC_DEVICE_NODE_TIMEOUT' });
    expect(currentDriver(sysfs, gpu)).toBe('vfio-pci');
    expect(status(sysfs, 'vfio', ALL).converged).toBe(false);
  });

  it('a late device node is waited for and the run converges', async () => {
    const { sysfs, root } = simNode('h100-pcie-1');
    await injectFault(root, { kind: 'devnode-delay', device: '0000:41:00.0', delayMs: 150 });
    const result = await bind(sysfs, ALL, options());
    expect(exitCodeOf(result)).toBe(0);
    expect(status(sysfs, 'vfio', ALL).converged).toBe(true);
  });

  it('a GPU whose NVIDIA unbind lock is refused is not touched', async () => {
    const { sysfs, root } = simNode('h100-pcie-1', VGPU_HOST);
    await injectFault(root, { kind: 'unbind-lock-held', device: '0000:41:00.0' });
    const s = sysfs.withRecorder();
    const result = await bind(s, ALL, options());
    expect(exitCodeOf(result)).toBe(1);
    expect(result.report!.results[0]!.error).toMatchObject({ code: 'ERR_GPUCC_DEVICE_IN_USE' });
    expect(s.recorder.writeLog.filter((w) => w.path.startsWith('sys/'))).toEqual([]);
  });
});

describe('vfio-manager unbind', () => {
  it('without --restore leaves devices unbound with no override; restore later still knows the previous drivers', async () => {
    const { sysfs } = simNode('hgx-h100-8');
    await bind(sysfs, ALL, options());
    const released = await release(
      sysfs,
      { selection: { all: true }, nvswitches: false, restore: false, dryRun: false },
      options(),
    );
    expect(exitCodeOf(released)).toBe(0);
    const t = discoverPci(sysfs);
    expect(
      t.devices.filter((d) => d.kind === 'gpu').every((d) => d.driver === undefined && d.driverOverride === undefined),
    ).toBe(true);
    const restored = await release(
      sysfs,
      { selection: { all: true }, nvswitches: false, restore: true, dryRun: false },
      options(),
    );
    expect(exitCodeOf(restored)).toBe(0);
    expect(
      discoverPci(sysfs)
        .devices.filter((d) => d.kind === 'gpu')
        .every((d) => d.driver === 'nvidia'),
    ).toBe(true);
  });
});

describe('vfio-manager variant drivers', () => {
  it('grace-gh200-1: picks nvgrace_gpu_vfio_pci from modules.alias, loads it with --load-modules and binds to it', async () => {
    const { sysfs, root } = simNode('grace-gh200-1');
    const gpu = parsePciAddress('0009:01:00.0');
    const dry = await bind(sysfs, { ...ALL, dryRun: true }, options());
    expect(dry.plan.groups[0]!.steps[0]).toMatchObject({
      targetDriver: 'nvgrace_gpu_vfio_pci',
      targetModule: 'nvgrace_gpu_vfio_pci',
    });
    const refused = await bind(sysfs, ALL, options());
    expect(refused.report!.results[0]!.error).toMatchObject({ code: 'ERR_GPUCC_MODPROBE_DISABLED' });
    const result = await bind(
      sysfs,
      ALL,
      options({ loadModules: true, modprobe: { path: `${root}/usr/sbin/modprobe` } }),
    );
    expect(exitCodeOf(result)).toBe(0);
    expect(currentDriver(sysfs, gpu)).toBe('nvgrace_gpu_vfio_pci');
    expect(status(sysfs, 'vfio', ALL).converged).toBe(true);
    const restored = await release(
      sysfs,
      { selection: { all: true }, nvswitches: false, restore: true, dryRun: false },
      options(),
    );
    expect(exitCodeOf(restored)).toBe(0);
    expect(currentDriver(sysfs, gpu)).toBe('nvidia');
  });
});
