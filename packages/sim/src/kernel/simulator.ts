import path from 'node:path';
import { findHolders, HostRoot, type KernelHook, localFs, PCI_ADDRESS_PATTERN, type PciAddress } from '@gpucc/hal';
import {
  attachDriver,
  boundDriver,
  createVfioNodes,
  detachDriver,
  devicePresent,
  devPath,
  findDriver,
} from '../node/effects.js';
import { Tree } from '../node/files.js';
import { layoutDevice, unlayoutDevice } from '../node/layout.js';
import { FAULTS_FILE, NODE_FILE, WRITE_LOG } from '../node/paths.js';
import type { DeviceSpec, DriverSpec, NodeSpec } from '../node/spec.js';
import {
  type Fault,
  type FaultKind,
  readCcState,
  readFaults,
  readNodeSpec,
  withNodeLock,
  withNodeLockSync,
  writeCcState,
  writeFaults,
  writeNodeSpec,
} from '../node/state.js';
import { fail } from './errno.js';
import { driverMatches, idTablesMatch } from './match.js';

const BDF = PCI_ADDRESS_PATTERN;
const DEVICE_ATTR = new RegExp(`^sys/(?:bus/pci/devices|devices/.*)/(${BDF})/([^:]+)$`);
const DRIVER_ATTR = /^sys\/bus\/pci\/drivers\/([^/]+)\/(bind|unbind|new_id|remove_id)$/;
const UNBIND_LOCK = new RegExp(`^proc/driver/nvidia/gpus/(${BDF})/unbindLock$`);
const WRITE_ONLY = new Set(['bind', 'unbind', 'new_id', 'remove_id', 'reset', 'remove', 'rescan', 'drivers_probe']);
const DRIVER_UEVENT = /^sys\/bus\/pci\/drivers\/[^/]+\/uevent$/;
const RESET_METHODS = new Set(['device_specific', 'acpi', 'flr', 'af_flr', 'pm', 'bus', 'cxl_bus']);
const PAGE_SIZE = 4096;

/** The kernel refuses reads of write-only attributes (EACCES), whichever process reads. */
export function checkKernelRead(relPath: string): void {
  const rel = relPath.replace(/^\/+/, '');
  if (rel.startsWith('sys/') && (WRITE_ONLY.has(path.basename(rel)) || DRIVER_UEVENT.test(rel))) {
    fail('EACCES', `${rel} is write-only`);
  }
}

/** sysfs_streq: the value with at most one trailing newline removed. */
function streq(data: Uint8Array): string {
  const text = Buffer.from(data).toString('utf8');
  return text.endsWith('\n') ? text.slice(0, -1) : text;
}

/**
 * The kernel's side of sysfs writes on a simulated node: what each store does and how it fails
 * (docs/facts/kernel-sysfs-pci.md#what-each-write-does and
 * docs/facts/kernel-sysfs-pci.md#what-the-simulated-node-reproduces), applied to the tree (links,
 * device nodes), plus injected faults. It reads the tree as the truth for bindings, so several processes can share
 * one node.
 */
export class KernelSimulator implements KernelHook {
  readonly description = 'gpucc-sim kernel simulator';
  readonly tree: Tree;
  /** Read-only view of the node, for what the kernel learns from /proc (holders). */
  private readonly reader: HostRoot;
  private node: NodeSpec;
  private nodeMtime: string | undefined;
  private faults: Fault[] = [];
  private faultsMtime: string | undefined;
  /** Timers for late device nodes: they keep the process alive until the node appears, as udev would. */
  private readonly pendingNodes = new Set<NodeJS.Timeout>();
  /** Successful writes per writing process (for the kill-after-writes fault). */
  private readonly writesDone = new Map<number, number>();
  /** Hangs that end by themselves (a delay was given): the kernel process stays up for them. */
  private finiteWaits = 0;

  constructor(readonly root: string) {
    this.tree = new Tree(root, { replaceFiles: true });
    this.reader = new HostRoot(root);
    this.node = readNodeSpec(root);
    this.nodeMtime = localFs.fileStamp(this.tree.abs(NODE_FILE));
  }

  checkRead(relPath: string): void {
    checkKernelRead(relPath);
  }

  /** One store, on behalf of process `writer` (whose pid the write log records). */
  async write(relPath: string, data: Uint8Array, writer = process.pid): Promise<void> {
    const rel = relPath.replace(/^\/+/, '');
    const value = Buffer.from(data).toString('utf8');
    try {
      await this.dispatch(rel, data);
      this.log(rel, value, 'ok', writer);
      this.killIfFaulted(writer);
    } catch (error) {
      this.log(rel, value, (error as { code?: string }).code ?? 'error', writer);
      throw error;
    }
  }

  /** Whether work that ends by itself is pending: a timed hang, a late device node. */
  busy(): boolean {
    return this.finiteWaits > 0 || this.pendingNodes.size > 0;
  }

  /**
   * The crash test: after its N-th successful write the writer dies at once, as if OOM-killed or
   * kill -9'd between two sysfs writes. The fault is used up first, so the rerun is not killed.
   */
  private killIfFaulted(writer: number): void {
    const done = (this.writesDone.get(writer) ?? 0) + 1;
    this.writesDone.set(writer, done);
    const fault = this.faults.find((f) => f.kind === 'kill-after-writes');
    if (!fault || done < (fault.afterWrites ?? 1)) return;
    withNodeLockSync(this.root, () =>
      writeFaults(
        this.root,
        readFaults(this.root).filter((f) => f.kind !== 'kill-after-writes'),
      ),
    );
    this.writesDone.delete(writer);
    process.kill(writer, 'SIGKILL');
  }

  /** Cancels late device nodes still pending (tests and shutdown). */
  dispose(): void {
    for (const timer of this.pendingNodes) clearTimeout(timer);
    this.pendingNodes.clear();
  }

  private async dispatch(rel: string, data: Uint8Array): Promise<void> {
    if (!this.tree.exists(rel)) fail('ENOENT', `${rel} does not exist`); // O_CREAT is never used
    this.refresh();
    const driverAttr = DRIVER_ATTR.exec(rel);
    if (driverAttr) return this.driverStore(driverAttr[1]!, driverAttr[2]!, data);
    if (rel === 'sys/bus/pci/drivers_probe') return this.driversProbe(streq(data));
    if (rel === 'sys/bus/pci/rescan') return this.rescan(data);
    if (rel === 'sys/bus/pci/drivers_autoprobe') return this.storeBool(rel, data);
    const lock = UNBIND_LOCK.exec(rel);
    if (lock) {
      // The driver refuses the lock while a client has the GPU open (nv-procfs.c, rm_unbind_lock).
      const granted = streq(data) === '1' && !this.takeFault('unbind-lock-held', lock[1]!) && !this.held(lock[1]!);
      return this.storeText(rel, granted ? '1' : '0');
    }
    const deviceAttr = DEVICE_ATTR.exec(rel);
    if (deviceAttr) return this.deviceStore(deviceAttr[1]!, deviceAttr[2]!, rel, data);
    return this.genericStore(rel, data);
  }

  // ---- per-device attributes ------------------------------------------------------------------

  private async deviceStore(address: string, attr: string, rel: string, data: Uint8Array): Promise<void> {
    const device = this.device(address);
    if (attr === 'driver/unbind' || attr === 'driver/bind') {
      const driver = boundDriver(this.tree, device);
      if (!driver) fail('ENOENT', `${address} has no driver`);
      return this.driverStore(driver, attr.slice('driver/'.length), data);
    }
    if (data.length === 0) return; // sysfs never calls store() for a zero-length write
    this.vanishIfFaulted(device);
    switch (attr) {
      case 'driver_override':
        return this.storeOverride(device, data);
      case 'reset':
        return this.reset(device, data);
      case 'remove':
        if (!/^\s*[0-9]+\s*$/.test(streq(data))) fail('EINVAL', 'remove takes a number');
        if (Number(streq(data)) !== 0) this.removeDevice(device);
        return;
      case 'rescan':
        return this.rescan(data);
      case 'enable':
        if (boundDriver(this.tree, device)) fail('EBUSY', `${address} is bound`);
        return this.storeBool(rel, data);
      case 'power/control': {
        const mode = streq(data);
        if (mode !== 'auto' && mode !== 'on') fail('EINVAL', 'power/control takes auto or on');
        return this.storeText(rel, mode);
      }
      case 'reset_method': {
        const names = streq(data).trim().split(/\s+/).filter(Boolean);
        if (names.length === 1 && names[0] === 'default') return this.storeText(rel, device.resetMethods.join(' '));
        if (names.some((n) => !RESET_METHODS.has(n))) fail('EINVAL', 'unknown reset method');
        return this.storeText(rel, names.join(' '));
      }
      default:
        return this.genericStore(rel, data);
    }
  }

  private storeOverride(device: DeviceSpec, data: Uint8Array): void {
    if (data.length >= PAGE_SIZE - 1) fail('EINVAL', 'driver_override too long');
    const text = Buffer.from(data).toString('utf8');
    const name = text.split('\n')[0]!.replace(/\0.*$/s, '');
    // "\n" or a NUL-only buffer clears the override; the kernel prints "(null)" for unset.
    this.storeText(`${devPath(device)}/driver_override`, name === '' ? '(null)' : name);
  }

  private async reset(device: DeviceSpec, data: Uint8Array): Promise<void> {
    if (streq(data) !== '1') fail('EINVAL', 'reset takes 1');
    const methods = this.tree.read(`${devPath(device)}/reset_method`).trim();
    if (methods === '') fail('ENOTTY', `${device.address} has no usable reset method`);
    const hang = this.takeFault('reset-hang', device.address);
    if (hang) await this.wait(hang.delayMs);
    const error = this.takeFault('reset-error', device.address);
    if (error) fail(error.errno ?? 'EIO', `reset of ${device.address} failed`);
    // A reset makes the pending CC and PPCIe modes active; the binding stays. Under the node lock,
    // as the fake tools' knob writes are: a read-modify-write must not lose theirs.
    if (this.takeFault('cc-stuck', device.address)) return;
    withNodeLockSync(this.root, () => {
      const cc = readCcState(this.root, device.address);
      if (cc) writeCcState(this.root, device.address, { ...cc, cc: cc.ccPending, ppcie: cc.ppciePending });
    });
  }

  // ---- driver attributes ----------------------------------------------------------------------

  private async driverStore(driverName: string, attr: string, data: Uint8Array): Promise<void> {
    const driver = findDriver(this.node, driverName);
    if (!driver?.loaded) fail('ENOENT', `driver ${driverName} is not registered`);
    if (data.length === 0) return;
    if (attr === 'bind') return this.bind(driver, streq(data));
    if (attr === 'unbind') return this.unbind(driver, streq(data));
    return this.changeDynamicIds(driver, attr === 'new_id', streq(data));
  }

  private async bind(driver: DriverSpec, address: string): Promise<void> {
    const device = this.presentDevice(address);
    this.vanishIfFaulted(device);
    if (boundDriver(this.tree, device)) fail('EBUSY', `${address} is already bound`);
    if (!driverMatches(driver, device, this.override(device)))
      fail('ENODEV', `${driver.name} does not match ${address}`);
    const injected = this.takeFault('bind-error', address);
    if (injected) fail(injected.errno ?? 'EINVAL', `probe of ${address} failed (injected)`);
    this.probe(driver, device);
  }

  /** The driver's probe: VFIO refuses devices without an IOMMU group and PCI-to-PCI bridges. */
  private probe(driver: DriverSpec, device: DeviceSpec): void {
    if (driver.vfio) {
      const hasGroup = this.tree.exists(`${devPath(device)}/iommu_group`);
      if (!hasGroup && !this.node.noiommu)
        fail('EINVAL', `probe of ${device.address} failed with error -22 (no IOMMU group)`);
      if (device.class >> 8 === 0x0604 || device.class >> 8 === 0x0600)
        fail('EINVAL', `probe of ${device.address} failed with error -22 (bridge)`);
    }
    const never = driver.vfio && this.takeFault('devnode-never', device.address);
    const late = driver.vfio ? this.takeFault('devnode-delay', device.address) : undefined;
    attachDriver(this.tree, this.node, device, driver.name, { deferNodes: Boolean(never || late) });
    if (late && !never) {
      const timer = setTimeout(() => {
        this.pendingNodes.delete(timer);
        if (boundDriver(this.tree, device) === driver.name) createVfioNodes(this.tree, this.node, device);
      }, late.delayMs ?? 200);
      this.pendingNodes.add(timer);
    }
  }

  private async unbind(driver: DriverSpec, address: string): Promise<void> {
    const device = this.presentDevice(address);
    this.vanishIfFaulted(device);
    if (boundDriver(this.tree, device) !== driver.name) fail('ENODEV', `${address} is not bound to ${driver.name}`);
    const hang = this.takeFault('unbind-hang', address);
    if (hang) {
      await this.wait(hang.delayMs);
      // The driver's remove ran to its end while other devices changed: look again, as the kernel would.
      if (!devicePresent(this.tree, address)) fail('ENODEV', `${address} is gone`);
    }
    const error = this.takeFault('unbind-error', address);
    if (error) fail(error.errno ?? 'EBUSY', `unbind of ${address} failed (injected)`);
    if (driver.name === 'nvidia') await this.untilReleased(address);
    detachDriver(this.tree, this.node, device);
  }

  private async changeDynamicIds(driver: DriverSpec, add: boolean, text: string): Promise<void> {
    const fields = text.trim().split(/\s+/);
    if (fields.length < 2 || fields.some((f) => !/^[0-9a-fA-F]{1,8}$/.test(f)))
      fail('EINVAL', 'new_id/remove_id: bad fields');
    const id = `${fields[0]!.toLowerCase().padStart(4, '0')} ${fields[1]!.toLowerCase().padStart(4, '0')}`;
    await withNodeLock(this.root, () => {
      const node = readNodeSpec(this.root);
      const target = findDriver(node, driver.name)!;
      const ids = new Set(target.dynamicIds ?? []);
      if (add) {
        const [vendor, device] = id.split(' ').map((h) => Number.parseInt(h, 16));
        const staticMatch = target.match.some((r) => r.vendor === vendor && r.device === device);
        if (staticMatch || ids.has(id)) fail('EEXIST', `${id} already matches ${driver.name}`);
        ids.add(id);
      } else if (!ids.delete(id)) {
        fail('ENODEV', `${id} is not a dynamic ID of ${driver.name}`);
      }
      target.dynamicIds = [...ids];
      writeNodeSpec(this.root, node);
      this.node = node;
      this.nodeMtime = localFs.fileStamp(this.tree.abs(NODE_FILE));
    });
    if (!add) return;
    // new_id probes every unbound device the new ID matches: all cards of that model.
    const fresh = findDriver(this.node, driver.name)!;
    for (const device of this.node.devices) {
      if (!devicePresent(this.tree, device.address) || boundDriver(this.tree, device)) continue;
      const override = this.override(device);
      if (override !== undefined && override !== fresh.name) continue;
      if (idTablesMatch(fresh, device)) this.tryProbe(fresh, device);
    }
  }

  // ---- bus attributes -------------------------------------------------------------------------

  private driversProbe(address: string): void {
    const device = this.presentDevice(address);
    if (boundDriver(this.tree, device)) return;
    this.autoprobe(device, true);
  }

  /** Normal matching for an unbound device: first loaded driver that matches wins; none is fine. */
  private autoprobe(device: DeviceSpec, reportErrors: boolean): void {
    const override = this.override(device);
    for (const driver of this.node.drivers) {
      if (!driver.loaded || !driverMatches(driver, device, override)) continue;
      try {
        this.probe(driver, device);
        return;
      } catch (error) {
        if (reportErrors) throw error;
        return;
      }
    }
  }

  private tryProbe(driver: DriverSpec, device: DeviceSpec): void {
    try {
      this.probe(driver, device);
    } catch {
      // a failed probe during new_id or rescan is logged by the kernel, not returned
    }
  }

  private rescan(data: Uint8Array): void {
    if (!/^\s*[0-9]+\s*$/.test(streq(data))) fail('EINVAL', 'rescan takes a number');
    if (Number(streq(data)) === 0) return;
    const autoprobe = this.tree.read('sys/bus/pci/drivers_autoprobe').trim() === '1';
    for (const device of this.node.devices) {
      if (devicePresent(this.tree, device.address)) continue;
      layoutDevice(this.tree, this.node, device);
      if (autoprobe) this.autoprobe(device, false);
    }
  }

  /** The injected hot-removal: the device disappears and the write that noticed fails with ENODEV. */
  private vanishIfFaulted(device: DeviceSpec): void {
    if (!this.takeFault('device-gone', device.address)) return;
    this.removeDevice(device);
    fail('ENODEV', `${device.address} is gone`);
  }

  private removeDevice(device: DeviceSpec): void {
    detachDriver(this.tree, this.node, device);
    unlayoutDevice(this.tree, device);
  }

  // ---- helpers --------------------------------------------------------------------------------

  private genericStore(rel: string, data: Uint8Array): void {
    if ((localFs.modeOf(this.tree.abs(rel)) & 0o222) === 0) fail('EACCES', `${rel} is read-only`);
    if (data.length === 0) return;
    localFs.writeAttributeSync(this.tree.abs(rel), data);
  }

  private storeBool(rel: string, data: Uint8Array): void {
    const v = streq(data).trim();
    if (!/^(0|1|y|n|Y|N)$/.test(v)) fail('EINVAL', `${rel} takes a boolean`);
    this.storeText(rel, /^(1|y|Y)$/.test(v) ? '1' : '0');
  }

  private storeText(rel: string, text: string): void {
    localFs.writeAttributeSync(this.tree.abs(rel), Buffer.from(`${text}\n`));
  }

  private override(device: DeviceSpec): string | undefined {
    const value = this.tree.read(`${devPath(device)}/driver_override`).replace(/\n$/, '');
    return value === '(null)' ? undefined : value;
  }

  private device(address: string): DeviceSpec {
    const device = this.node.devices.find((d) => d.address === address);
    if (!device) fail('ENODEV', `no device ${address}`);
    return device;
  }

  private presentDevice(address: string): DeviceSpec {
    const device = this.node.devices.find((d) => d.address === address);
    if (!device || !devicePresent(this.tree, address)) fail('ENODEV', `no device ${address}`);
    return device;
  }

  /** Picks up changes other processes made to node.json and faults.json (cheap stat check). */
  private refresh(): void {
    const nodeMtime = localFs.fileStamp(this.tree.abs(NODE_FILE));
    if (nodeMtime !== this.nodeMtime) {
      this.node = readNodeSpec(this.root);
      this.nodeMtime = nodeMtime;
    }
    const faultsMtime = localFs.fileStamp(this.tree.abs(FAULTS_FILE));
    if (faultsMtime !== this.faultsMtime) {
      this.faults = readFaults(this.root);
      this.faultsMtime = faultsMtime;
    }
  }

  /** The first matching fault, used up by one when it has a count. */
  private takeFault(kind: FaultKind, address: string): Fault | undefined {
    const index = this.faults.findIndex((f) => f.kind === kind && (f.device === undefined || f.device === address));
    if (index < 0) return undefined;
    const fault = this.faults[index]!;
    if (fault.times !== undefined) {
      // Use it up under the node lock: fake tools in other processes count down the same file.
      withNodeLockSync(this.root, () => {
        const faults = readFaults(this.root);
        const stored = faults.findIndex((f) => f.kind === fault.kind && f.device === fault.device);
        if (stored >= 0) {
          const left = (faults[stored]!.times ?? 1) - 1;
          if (left <= 0) faults.splice(stored, 1);
          else faults[stored] = { ...faults[stored]!, times: left };
          writeFaults(this.root, faults);
        }
        this.faults = faults;
        this.faultsMtime = localFs.fileStamp(this.tree.abs(FAULTS_FILE));
      });
    }
    return fault;
  }

  private log(rel: string, value: string, result: string, writer: number): void {
    localFs.appendText(
      this.tree.abs(WRITE_LOG),
      `${JSON.stringify({ t: Date.now(), pid: writer, path: rel, value, result })}\n`,
    );
  }

  /** Whether a process under proc/ has the GPU's /dev/nvidia<minor> open (gpucc-sim hold). */
  private held(address: string): boolean {
    return findHolders(this.reader).holders.some(
      (h) => h.kind === 'nvidia' && h.addresses.includes(address as PciAddress),
    );
  }

  /**
   * nv-pci.c nv_pci_remove_helper(): with a non-zero usage count the remove sleeps 500 ms at a time
   * until the last client is gone, and the unbind's write(2) stays blocked in it
   * (docs/facts/real-hosts.md#an-nvidia-unbind-waits-for-the-last-client). Polled faster here.
   */
  private async untilReleased(address: string): Promise<void> {
    while (this.held(address)) await new Promise((resolve) => setTimeout(resolve, HOLDER_POLL_MS));
  }

  /** A store that blocks in the driver: for `ms`, or (none given) for good, as a remove() waiting on a VM. */
  private async wait(ms: number | undefined): Promise<void> {
    if (ms === undefined) return new Promise<void>(() => {});
    this.finiteWaits++;
    try {
      await new Promise((resolve) => setTimeout(resolve, ms));
    } finally {
      this.finiteWaits--;
    }
  }
}

const HOLDER_POLL_MS = 50;

const ADDRESS_IN_PATH = new RegExp(`/(${BDF})/`);

/**
 * What a store serializes on in the kernel process: the device it names (in its path, or as the
 * value of bind/unbind), else the bus. The kernel takes the device's device_lock in unbind, bind,
 * driver_override (drivers/base/driver.c driver_set_override) and reset, so a store to a device waits
 * for a hung one to the same device.
 */
export function serialKey(relPath: string, data: Uint8Array): string {
  const rel = relPath.replace(/^\/+/, '');
  const inPath = ADDRESS_IN_PATH.exec(`${rel}/`);
  if (inPath) return inPath[1]!;
  const named = streq(data).trim();
  return new RegExp(`^${BDF}$`).test(named) ? named : 'bus';
}
