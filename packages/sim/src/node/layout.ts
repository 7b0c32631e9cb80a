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
import { type CcState, type CpuSpec, type DeviceSpec, hex, makesVfioCdevs, type NodeSpec } from './spec.js';

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
  const cpu = cpuOf(node);
  if (node.iommu) tree.dir(`sys/class/iommu/${cpu.vendor === 'intel' ? 'dmar0' : 'ivhd0'}`);
  tree.dir('sys/class/vfio-dev');
  tree.dir('sys/dev/char');

  // Host TEE markers: kvm module parameters (Y/N) of the CPU vendor's KVM module.
  if (cpu.vendor === 'intel') tree.attr('sys/module/kvm_intel/parameters/tdx', node.tee === 'tdx' ? 'Y' : 'N');
  else tree.attr('sys/module/kvm_amd/parameters/sev_snp', node.tee === 'sev-snp' ? 'Y' : 'N');
  layoutHostFacts(tree, node, cpu);
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

  const iommuArg = !node.iommu ? '' : cpu.vendor === 'intel' ? ' intel_iommu=on iommu=pt' : ' amd_iommu=on iommu=pt';
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

/** Nodes written before the CPU was described have an AMD CPU offering the node's TEE. */
function cpuOf(node: NodeSpec): CpuSpec {
  return (
    node.cpu ?? {
      vendor: node.tee === 'tdx' ? 'intel' : 'amd',
      model: 'AMD EPYC 9654 96-Core Processor',
      tee: node.tee,
    }
  );
}

// A few flags of each vendor, and the TEE one the kernel prints when the BIOS enabled it
// (docs/facts/real-hosts.md#cpu-flags-for-sev-snp-and-tdx).
const CPU_FLAGS = {
  amd: 'fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc rep_good nopl nonstop_tsc cpuid extd_apicid aperfmperf pni pclmulqdq monitor ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand lahf_lm cmp_legacy svm extapic cr8_legacy abm sse4a misalignsse 3dnowprefetch osvw ibs skinit wdt tce topoext perfctr_core perfctr_nb bpext perfctr_llc mwaitx cpb cat_l3 cdp_l3 hw_pstate ssbd mba perfmon_v2 ibrs ibpb stibp vmmcall fsgsbase bmi1 avx2 smep bmi2 erms invpcid cqm rdt_a avx512f avx512dq rdseed adx smap avx512ifma clflushopt clwb avx512cd sha_ni avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves cqm_llc cqm_occup_llc cqm_mbm_total cqm_mbm_local avx512_bf16 clzero irperf xsaveerptr rdpru wbnoinvd amd_ppin cppc arat npt lbrv svm_lock nrip_save tsc_scale vmcb_clean flushbyasid decodeassists pausefilter pfthreshold avic v_vmsave_vmload vgif x2avic v_spec_ctrl vnmi avx512vbmi umip pku ospke avx512_vbmi2 gfni vaes vpclmulqdq avx512_vnni avx512_bitalg avx512_vpopcntdq la57 rdpid overflow_recov succor smca fsrm flush_l1d debug_swap',
  intel:
    'fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush dts acpi mmx fxsr sse sse2 ss ht tm pbe syscall nx pdpe1gb rdtscp lm constant_tsc art arch_perfmon pebs bts rep_good nopl xtopology nonstop_tsc cpuid aperfmperf tsc_known_freq pni pclmulqdq dtes64 monitor ds_cpl vmx smx est tm2 ssse3 sdbg fma cx16 xtpr pdcm pcid dca sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave avx f16c rdrand lahf_lm abm 3dnowprefetch cpuid_fault epb cat_l3 cat_l2 cdp_l3 intel_ppin cdp_l2 ssbd mba ibrs ibpb stibp ibrs_enhanced tpr_shadow flexpriority ept vpid ept_ad fsgsbase tsc_adjust bmi1 avx2 smep bmi2 erms invpcid cqm rdt_a avx512f avx512dq rdseed adx smap avx512ifma clflushopt clwb intel_pt avx512cd sha_ni avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves cqm_llc cqm_occup_llc cqm_mbm_total cqm_mbm_local split_lock_detect user_shstk avx_vnni avx512_bf16 wbnoinvd dtherm ida arat pln pts hfi vnmi avx512vbmi umip pku ospke waitpkg avx512_vbmi2 gfni vaes vpclmulqdq avx512_vnni avx512_bitalg tme avx512_vpopcntdq la57 rdpid bus_lock_detect cldemote movdiri movdir64b enqcmd fsrm md_clear serialize tsxldtrk pconfig arch_lbr ibt amx_bf16 avx512_fp16 amx_tile amx_int8 flush_l1d arch_capabilities',
} as const;
const CPU_IDS = {
  amd: { vendorId: 'AuthenticAMD', family: 25, model: 17, stepping: 1 },
  intel: { vendorId: 'GenuineIntel', family: 6, model: 207, stepping: 2 },
} as const;

/** /proc/cpuinfo (two processors, as the kernel prints each), os-release and securityfs. */
function layoutHostFacts(tree: Tree, node: NodeSpec, cpu: CpuSpec): void {
  const ids = CPU_IDS[cpu.vendor];
  const teeFlag = cpu.tee === 'sev-snp' ? ' sev sev_es sev_snp' : cpu.tee === 'tdx' ? ' tdx_host_platform' : '';
  const flags = `${CPU_FLAGS[cpu.vendor]}${teeFlag}`;
  const block = (n: number) =>
    [
      `processor\t: ${n}`,
      `vendor_id\t: ${ids.vendorId}`,
      `cpu family\t: ${ids.family}`,
      `model\t\t: ${ids.model}`,
      `model name\t: ${cpu.model}`,
      `stepping\t: ${ids.stepping}`,
      `flags\t\t: ${flags}`,
      '',
    ].join('\n');
  tree.file('proc/cpuinfo', `${block(0)}\n${block(1)}\n`, 0o444);
  const { name, versionId } = node.os ?? { name: 'Ubuntu', versionId: '25.10' };
  tree.file(
    'etc/os-release',
    [
      `PRETTY_NAME="${name} ${versionId}"`,
      `NAME="${name}"`,
      `VERSION_ID="${versionId}"`,
      `ID=${name.toLowerCase()}`,
      '',
    ].join('\n'),
  );
  const lockdown = node.lockdown ?? 'none';
  const lsms = ['capability', ...(lockdown === 'not-built' ? [] : ['lockdown']), 'landlock', 'yama', 'apparmor'];
  tree.file('sys/kernel/security/lsm', lsms.join(','), 0o444);
  if (lockdown !== 'not-built') {
    const line = (['none', 'integrity', 'confidentiality'] as const)
      .map((level) => (level === lockdown ? `[${level}]` : level))
      .join(' ');
    tree.file('sys/kernel/security/lockdown', `${line}\n`, 0o600);
  }
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
  // pci-sysfs.c creates both for every function (docs/facts/real-hosts.md#subsystem-ids-on-bridges).
  tree.attr(`${dev}/subsystem_vendor`, hex(d.subsystemVendor, 4));
  tree.attr(`${dev}/subsystem_device`, hex(d.subsystemDevice, 4));
  tree.attr(`${dev}/revision`, hex(d.revision, 2));
  tree.attr(`${dev}/numa_node`, String(d.numaNode), 0o644);
  tree.attr(`${dev}/local_cpulist`, d.numaNode === 1 ? '32-63,96-127' : '0-31,64-95');
  tree.attr(`${dev}/modalias`, modalias(d));
  writeUevent(tree, d, undefined);
  tree.file(`${dev}/resource`, resourceLines(d), 0o444);
  tree.attr(`${dev}/driver_override`, '(null)', 0o644);
  tree.attr(`${dev}/enable`, '1', 0o644);
  tree.attr(`${dev}/irq`, String(100 + (Number.parseInt(d.address.split(':')[1]!, 16) % 100)));
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
  // vmd.c links `domain` to the root bus of the VMD domain, whose devices sit below it.
  if (d.vmdRootBus) tree.link(`${dev}/domain`, `${dev}/${d.vmdRootBus}`);
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
