import type { Tree } from './files.js';
import { deviceDir, IOMMU_GROUPS, PCI_DEVICES, PCI_DRIVERS } from './paths.js';
import { type DeviceSpec, type DriverSpec, makesVfioCdevs, type NodeSpec } from './spec.js';

/** The kernel's side effects of binding, unbinding and loading drivers, applied to a host tree. */

export const VFIO_CDEV_MAJOR = 511;

export function devPath(device: DeviceSpec): string {
  return deviceDir(device.parent, device.address);
}

export function findDriver(node: NodeSpec, name: string): DriverSpec | undefined {
  return node.drivers.find((d) => d.name === name);
}

/** The driver a device is bound to now, read from its `driver` link (the tree is the truth). */
export function boundDriver(tree: Tree, device: DeviceSpec): string | undefined {
  const target = tree.readLink(`${devPath(device)}/driver`);
  return target === undefined ? undefined : target.split('/').pop();
}

/** The device's uevent as the kernel prints it (pci_uevent + the driver core's DRIVER=). */
export function writeUevent(tree: Tree, device: DeviceSpec, driver: string | undefined): void {
  const h4 = (v: number) => v.toString(16).toUpperCase().padStart(4, '0');
  const lines = [
    ...(driver ? [`DRIVER=${driver}`] : []),
    `PCI_CLASS=${device.class.toString(16).toUpperCase()}`,
    `PCI_ID=${h4(device.vendor)}:${h4(device.device)}`,
    `PCI_SUBSYS_ID=${h4(device.subsystemVendor)}:${h4(device.subsystemDevice)}`,
    `PCI_SLOT_NAME=${device.address}`,
    `MODALIAS=${modalias(device)}`,
  ];
  tree.file(`${devPath(device)}/uevent`, `${lines.join('\n')}\n`, 0o644);
}

export function modalias(d: DeviceSpec): string {
  const h8 = (v: number) => v.toString(16).toUpperCase().padStart(8, '0');
  const h2 = (v: number) => v.toString(16).toUpperCase().padStart(2, '0');
  return `pci:v${h8(d.vendor)}d${h8(d.device)}sv${h8(d.subsystemVendor)}sd${h8(d.subsystemDevice)}bc${h2(d.class >> 16)}sc${h2((d.class >> 8) & 0xff)}i${h2(d.class & 0xff)}`;
}

export function loadDriver(tree: Tree, driver: DriverSpec): void {
  const dir = `${PCI_DRIVERS}/${driver.name}`;
  tree.dir(dir);
  for (const attr of ['bind', 'unbind', 'new_id', 'remove_id']) tree.writeOnly(`${dir}/${attr}`);
  tree.file(`${dir}/uevent`, '', 0o200);
  loadModule(tree, driver.module);
  tree.link(`${dir}/module`, `sys/module/${driver.module}`);
  if (driver.vfio) loadModule(tree, 'vfio');
  driver.loaded = true;
}

export function loadModule(tree: Tree, module: string, version?: string): void {
  const dir = `sys/module/${module}`;
  if (tree.exists(dir)) return;
  tree.attr(`${dir}/refcnt`, '0');
  tree.attr(`${dir}/initstate`, 'live');
  if (version) tree.attr(`${dir}/version`, version);
  if (module === 'vfio') {
    tree.dir('dev/vfio');
    tree.file('dev/vfio/vfio', '', 0o666);
  }
}

/** Makes `device` bound to `driverName`: links both ways, device nodes for VFIO and NVIDIA drivers. */
export function attachDriver(
  tree: Tree,
  node: NodeSpec,
  device: DeviceSpec,
  driverName: string,
  options: { deferNodes?: boolean } = {},
): void {
  const dev = devPath(device);
  tree.link(`${dev}/driver`, `${PCI_DRIVERS}/${driverName}`);
  tree.link(`${PCI_DRIVERS}/${driverName}/${device.address}`, dev);
  writeUevent(tree, device, driverName);
  const driver = findDriver(node, driverName);
  // A host driver enables its device; vfio-pci only on the first open by a VMM, so a VFIO device
  // nobody opened reads 0 (docs/facts/real-hosts.md#an-open-vfio-pci-device-has-enable-1).
  tree.attr(`${dev}/enable`, driver?.vfio ? '0' : '1', 0o644);
  if (driver?.vfio && !options.deferNodes) createVfioNodes(tree, node, device);
  if (driverName === 'nvidia') {
    const minor = nvidiaMinor(node, device);
    const gpuDir = `proc/driver/nvidia/gpus/${device.address}`;
    // nv-procfs.c nv_procfs_add_gpu(): `information` always, `unbindLock` only in vGPU-host builds
    // (os_is_vgx_hyper()); docs/facts/real-hosts.md#the-nvidia-unbind-lock.
    tree.file(`${gpuDir}/information`, nvidiaInformation(device, minor), 0o444);
    if (node.nvidiaDriverKind === 'vgpu-host') tree.attr(`${gpuDir}/unbindLock`, '0', 0o644);
    tree.file(`dev/nvidia${minor}`, '', 0o666);
    tree.file('dev/nvidiactl', '', 0o666);
  }
}

export function detachDriver(tree: Tree, node: NodeSpec, device: DeviceSpec): void {
  const dev = devPath(device);
  const driverName = boundDriver(tree, device);
  if (driverName === undefined) return;
  tree.remove(`${dev}/driver`);
  tree.remove(`${PCI_DRIVERS}/${driverName}/${device.address}`);
  writeUevent(tree, device, undefined);
  tree.attr(`${dev}/enable`, '0', 0o644);
  if (findDriver(node, driverName)?.vfio) removeVfioNodes(tree, node, device);
  if (driverName === 'nvidia') {
    tree.remove(`proc/driver/nvidia/gpus/${device.address}`);
    tree.remove(`dev/nvidia${nvidiaMinor(node, device)}`);
  }
}

/** The procfs `information` file, with the "Device Minor" line that names the GPU's /dev/nvidia<N>. */
function nvidiaInformation(device: DeviceSpec, minor: number): string {
  return [
    `Model: \t\t ${device.ccName ?? 'NVIDIA GPU'}`,
    'IRQ:   \t\t 0',
    'GPU UUID: \t GPU-00000000-0000-0000-0000-000000000000',
    `Bus Location: \t ${device.address}`,
    `Device Minor: \t ${minor}`,
    '',
  ].join('\n');
}

export function nvidiaMinor(node: NodeSpec, device: DeviceSpec): number {
  return node.devices
    .filter((d) => d.vendor === 0x10de && (d.class >> 8 === 0x0302 || d.class >> 8 === 0x0300))
    .indexOf(device);
}

/** Group node name: `N`, or `noiommu-N` in no-IOMMU mode. */
function groupNode(node: NodeSpec, group: number): string {
  return node.noiommu ? `dev/vfio/noiommu-${group}` : `dev/vfio/${group}`;
}

/**
 * Device nodes that appear when a device binds to a VFIO driver: the group node with the first VFIO
 * device of the group; the device's `vfio-dev/vfio<N>` registration with the lowest free number (every
 * kernel from 6.1 makes one) and, where the kernel makes cdevs, its char device (`dev`, `/sys/dev/char`,
 * `/dev/vfio/devices/vfio<N>`) (docs/facts/kernel-sysfs-pci.md#vfio-cdevs-per-device).
 */
export function createVfioNodes(tree: Tree, node: NodeSpec, device: DeviceSpec): void {
  if (device.iommuGroup !== undefined) tree.file(groupNode(node, device.iommuGroup), '', 0o600);
  const index = (name: string) => Number(name.replace(/^(noiommu-)?vfio/, ''));
  const used = new Set([...tree.list('dev/vfio/devices'), ...tree.list('sys/class/vfio-dev')].map(index));
  let n = 0;
  while (used.has(n)) n++;
  const registration = `${devPath(device)}/vfio-dev/vfio${n}`;
  tree.link(`sys/class/vfio-dev/vfio${n}`, registration);
  if (!makesVfioCdevs(node)) {
    tree.attr(`${registration}/uevent`, ''); // a device without a number: no MAJOR/MINOR, no `dev`
    return;
  }
  tree.attr(`${registration}/dev`, `${VFIO_CDEV_MAJOR}:${n}`);
  tree.link(`sys/dev/char/${VFIO_CDEV_MAJOR}:${n}`, registration);
  tree.file(`dev/vfio/devices/${node.noiommu ? 'noiommu-' : ''}vfio${n}`, '', 0o600);
}

export function removeVfioNodes(tree: Tree, node: NodeSpec, device: DeviceSpec): void {
  const dev = devPath(device);
  for (const name of tree.list(`${dev}/vfio-dev`)) {
    const n = name.replace(/^vfio/, '');
    tree.remove(`sys/class/vfio-dev/${name}`);
    tree.remove(`sys/dev/char/${VFIO_CDEV_MAJOR}:${n}`);
    tree.remove(`dev/vfio/devices/${node.noiommu ? 'noiommu-' : ''}${name}`);
  }
  tree.remove(`${dev}/vfio-dev`);
  const group = device.iommuGroup;
  if (group === undefined) return;
  // The group node goes with the last VFIO device of the group.
  const stillVfio = tree
    .list(`${IOMMU_GROUPS}/${group}/devices`)
    .filter((address) => address !== device.address)
    .some((address) => {
      const other = node.devices.find((d) => d.address === address);
      const drv = other && boundDriver(tree, other);
      return drv !== undefined && findDriver(node, drv)?.vfio === true;
    });
  if (!stillVfio) tree.remove(groupNode(node, group));
}

/** Whether the device's bus link exists (it was not removed). */
export function devicePresent(tree: Tree, address: string): boolean {
  return tree.exists(`${PCI_DEVICES}/${address}`);
}
