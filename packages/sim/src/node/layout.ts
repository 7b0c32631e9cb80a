import { GpuccError, localFs } from '@gpucc/hal';
import { attachDriver, devPath, loadDriver, loadModule, modalias, writeUevent } from './effects.js';
import { Tree } from './files.js';
import {
  CC_DIR,
  ccStateFile,
  FAULTS_FILE,
  IOMMU_GROUPS,
  NODE_FILE,
  PCI_DEVICES,
  PCI_DRIVERS,
  SIM_DIR,
} from './paths.js';
import { PCI_IDS_EXCERPT } from './pci-ids-excerpt.js';
import { type CcState, type DeviceSpec, hex, makesVfioCdevs, type NodeSpec } from './spec.js';

/**
 * Lays out a host tree exactly as the kernel shows it (formats with trailing newlines, relative
 * symlinks from bus/pci/devices into devices/pci0000:xx/..., driver links both ways, IOMMU groups,
 * modules, device nodes), plus the simulator's own state under `.gpucc-sim/`.
 */
export function layoutNode(root: string, node: NodeSpec): void {
  if (localFs.kindOf(root) !== undefined && localFs.listDir(root).length > 0) {
    throw new GpuccError('ERR_GPUCC_SIM_TARGET_NOT_EMPTY', `${root} is not empty`, {
      hint: 'choose a new directory, or remove this one first (gpucc-sim never overwrites a tree)',
      details: { dir: root },
    });
  }
  const tree = new Tree(root);
  tree.dir('');
  layoutHostBasics(tree, node);
  for (const driver of node.drivers) if (driver.loaded) loadDriver(tree, driver);
  for (const device of node.devices) layoutDevice(tree, node, device);
  for (const device of node.devices) {
    if (device.driver) attachDriver(tree, node, device, device.driver);
  }
  tree.dir(CC_DIR);
  for (const device of node.devices) {
    if (device.ccName) tree.file(ccStateFile(device.address), `${JSON.stringify(initialCcState())}\n`);
  }
  tree.file(FAULTS_FILE, '[]\n');
  tree.file(NODE_FILE, `${JSON.stringify(node, null, 1)}\n`);
}

export function initialCcState(): CcState {
  return { cc: 'off', ccPending: 'off', ppcie: 'off', ppciePending: 'off' };
}

function layoutHostBasics(tree: Tree, node: NodeSpec): void {
  tree.dir(SIM_DIR);
  tree.dir(PCI_DEVICES);
  tree.dir(PCI_DRIVERS);
  tree.writeOnly('sys/bus/pci/drivers_probe');
  tree.writeOnly('sys/bus/pci/rescan');
  tree.attr('sys/bus/pci/drivers_autoprobe', '1', 0o644);
  tree.dir(IOMMU_GROUPS);
  if (node.iommu) tree.dir(`sys/class/iommu/${node.tee === 'tdx' ? 'dmar0' : 'ivhd0'}`);
  tree.dir('sys/class/vfio-dev');
  tree.dir('sys/dev/char');

  // Host TEE markers: kvm module parameters (Y/N), absent when the module is not loaded.
  if (node.tee === 'tdx') {
    tree.attr('sys/module/kvm_intel/parameters/tdx', 'Y');
  } else {
    tree.attr('sys/module/kvm_amd/parameters/sev_snp', node.tee === 'sev-snp' ? 'Y' : 'N');
  }
  loadModule(tree, 'vfio');
  tree.attr('sys/module/vfio/parameters/enable_unsafe_noiommu_mode', node.noiommu ? 'Y' : 'N', 0o644);
  tree.attr('sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts', 'N', 0o644);
  if (node.iommufd) {
    loadModule(tree, 'iommufd');
    tree.file('dev/iommu', '', 0o666);
    if (makesVfioCdevs(node)) tree.dir('dev/vfio/devices');
  }
  if (node.nvidiaDriverVersion) {
    loadModule(tree, 'nvidia', node.nvidiaDriverVersion);
    tree.file(
      'proc/driver/nvidia/version',
      `NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  ${node.nvidiaDriverVersion}  Release Build  (gpucc-sim)\n`,
    );
  }

  const iommuArg = !node.iommu ? '' : node.tee === 'tdx' ? ' intel_iommu=on iommu=pt' : ' amd_iommu=on iommu=pt';
  tree.file('proc/cmdline', `BOOT_IMAGE=/boot/vmlinuz-${node.kernelRelease} root=/dev/sda1 ro${iommuArg}\n`);
  tree.file('proc/sys/kernel/osrelease', `${node.kernelRelease}\n`);
  tree.file(
    `lib/modules/${node.kernelRelease}/modules.alias`,
    [
      '# Aliases extracted from modules themselves.',
      'alias pci:v000010DEd*sv*sd*bc03sc00i00* nvidia',
      'alias pci:v000010DEd*sv*sd*bc03sc02i00* nvidia',
      'alias vfio_pci:v000010DEd00002342sv*sd*bc*sc*i* nvgrace_gpu_vfio_pci',
      'alias vfio_pci:v000010DEd00002345sv*sd*bc*sc*i* nvgrace_gpu_vfio_pci',
      'alias vfio_pci:v000010DEd00002941sv*sd*bc*sc*i* nvgrace_gpu_vfio_pci',
      'alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci',
      '',
    ].join('\n'),
  );
  tree.file('usr/share/misc/pci.ids', PCI_IDS_EXCERPT);
  tree.dir('var/lib/kubelet/device-plugins');
  tree.dir('var/lib/gpucc');
  tree.dir('run/nvidia/validations');
  tree.dir('run/cdi');
  tree.dir('etc/cdi');
  tree.dir('var');
  localFs.symlinkSync('../run', tree.abs('var/run'));
}

function resourceLines(d: DeviceSpec): string {
  const zero = '0x0000000000000000 0x0000000000000000 0x0000000000000000';
  const lines = Array.from({ length: 13 }, () => zero);
  if (d.bar0 !== undefined) {
    const h = (v: number) => `0x${v.toString(16).padStart(16, '0')}`;
    lines[0] = `${h(d.bar0)} ${h(d.bar0 + 0xffffff)} ${h(0x40200)}`;
  }
  return `${lines.join('\n')}\n`;
}

/** One PCI function: its directory with every attribute, and the links into it. */
export function layoutDevice(tree: Tree, node: NodeSpec, d: DeviceSpec): void {
  const dev = devPath(d);
  tree.dir(dev);
  tree.attr(`${dev}/vendor`, hex(d.vendor, 4));
  tree.attr(`${dev}/device`, hex(d.device, 4));
  tree.attr(`${dev}/class`, hex(d.class, 6));
  if (d.subsystemVendor !== undefined) tree.attr(`${dev}/subsystem_vendor`, hex(d.subsystemVendor, 4));
  if (d.subsystemDevice !== undefined) tree.attr(`${dev}/subsystem_device`, hex(d.subsystemDevice, 4));
  tree.attr(`${dev}/revision`, hex(d.revision, 2));
  tree.attr(`${dev}/numa_node`, String(d.numaNode), 0o644);
  tree.attr(`${dev}/local_cpulist`, d.numaNode === 1 ? '32-63,96-127' : '0-31,64-95');
  tree.attr(`${dev}/modalias`, modalias(d));
  writeUevent(tree, d, undefined);
  tree.file(`${dev}/resource`, resourceLines(d), 0o444);
  tree.attr(`${dev}/driver_override`, '(null)', 0o644);
  tree.attr(`${dev}/enable`, '1', 0o644);
  tree.attr(`${dev}/irq`, String(100 + (Number.parseInt(d.address.slice(5, 7), 16) % 100)));
  tree.attr(`${dev}/power_state`, 'D0');
  tree.attr(`${dev}/power/control`, 'auto', 0o644);
  tree.attr(`${dev}/power/runtime_status`, 'active');
  tree.attr(`${dev}/d3cold_allowed`, '1', 0o644);
  tree.attr(`${dev}/msi_bus`, '1', 0o644);
  tree.file(`${dev}/reset_method`, d.resetMethods.length ? `${d.resetMethods.join(' ')}\n` : '', 0o644);
  if (d.resetMethods.length) tree.writeOnly(`${dev}/reset`);
  tree.writeOnly(`${dev}/remove`);
  tree.writeOnly(`${dev}/rescan`);
  if (d.class >> 8 === 0x0300) tree.attr(`${dev}/boot_vga`, '0');
  if (d.sriov) {
    tree.attr(`${dev}/sriov_totalvfs`, String(d.sriov.totalVfs));
    tree.attr(`${dev}/sriov_numvfs`, String(d.sriov.numVfs), 0o644);
  }
  tree.link(`${dev}/subsystem`, 'sys/bus/pci');
  tree.link(`${PCI_DEVICES}/${d.address}`, dev);
  if (d.physfn) {
    const pf = node.devices.find((p) => p.address === d.physfn);
    if (pf) tree.link(`${dev}/physfn`, devPath(pf));
  }
  if (d.iommuGroup !== undefined && node.iommu) {
    const group = `${IOMMU_GROUPS}/${d.iommuGroup}`;
    if (!tree.exists(group)) {
      tree.attr(`${group}/type`, 'DMA-FQ', 0o644);
      tree.file(`${group}/reserved_regions`, '0x00000000fee00000 0x00000000feefffff msi\n', 0o444);
    }
    tree.link(`${dev}/iommu_group`, group);
    tree.link(`${group}/devices/${d.address}`, dev);
  }
  for (const consumer of d.consumers ?? []) {
    // Device links live in /sys/devices/virtual/devlink; both ends point at the link directory.
    const devlink = `sys/devices/virtual/devlink/pci:${d.address}--pci:${consumer}`;
    tree.dir(devlink);
    tree.attr(`${devlink}/status`, 'active');
    tree.link(`${devlink}/supplier`, dev);
    tree.link(`${dev}/consumer:pci:${consumer}`, devlink);
    const other = node.devices.find((c) => c.address === consumer);
    if (other) {
      tree.link(`${devlink}/consumer`, devPath(other));
      tree.link(`${devPath(other)}/supplier:pci:${d.address}`, devlink);
    }
  }
}

/** Removes a function as `remove` does: driver, links, group membership and device nodes go. */
export function unlayoutDevice(tree: Tree, d: DeviceSpec): void {
  const dev = devPath(d);
  tree.remove(`${PCI_DEVICES}/${d.address}`);
  if (d.iommuGroup !== undefined) tree.remove(`${IOMMU_GROUPS}/${d.iommuGroup}/devices/${d.address}`);
  tree.remove(dev);
}
