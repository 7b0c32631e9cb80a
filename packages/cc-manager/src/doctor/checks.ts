import { type CcMode, kernelAtLeast, lockdownBlockingBars, parseKernelVersion } from '@gpucc/hal';
import { isFreeForCcTool } from '../devices.js';
import type { FirmwareAnswer } from './firmware.js';
import type { DoctorDevice, DoctorObservation } from './observe.js';

/**
 * The doctor's checks: each a pure function of the observation (and the mode asked for), so a test
 * can feed them any host without building one.
 */

export type CheckStatus = 'pass' | 'warn' | 'fail';

export interface CheckResult {
  id: string;
  status: CheckStatus;
  /** One line: what was found. */
  finding: string;
  /** One line: what to do about it; absent when the check passed. */
  fix?: string;
}

const pass = (id: string, finding: string): CheckResult => ({ id, status: 'pass', finding });
const warn = (id: string, finding: string, fix: string): CheckResult => ({ id, status: 'warn', finding, fix });
const fail = (id: string, finding: string, fix: string): CheckResult => ({ id, status: 'fail', finding, fix });

/** Long device lists stay on one line: the first few, then a count. */
export function listed(items: readonly string[], max = 4): string {
  return items.length <= max ? items.join(', ') : `${items.slice(0, max).join(', ')} and ${items.length - max} more`;
}

const hex = (id: number) => `0x${id.toString(16).padStart(4, '0')}`;
const named = (d: DoctorDevice) =>
  `${d.address} ${d.name === '?' ? hex(d.deviceId) : `${d.name} (${hex(d.deviceId)})`}`;
const gpusOf = (o: DoctorObservation) => o.devices.filter((d) => d.kind === 'gpu');

type Vendor = 'amd' | 'intel' | undefined;

/** AMD or Intel: the CPU's own word first, then the IOMMU unit names (ivhd / dmar), the TEE and KVM modules. */
export function cpuVendor(o: DoctorObservation): Vendor {
  const vendor = o.host.cpu?.vendor;
  if (vendor === 'amd' || vendor === 'intel') return vendor;
  if (o.iommu.units.some((u) => u.startsWith('dmar'))) return 'intel';
  if (o.iommu.units.some((u) => u.startsWith('ivhd') || u.startsWith('amd'))) return 'amd';
  const amd = o.kvm.sevSnp !== undefined;
  const intel = o.kvm.tdx !== undefined;
  if (o.tee === 'tdx' || (intel && !amd)) return 'intel';
  if (o.tee === 'sev-snp' || (amd && !intel)) return 'amd';
  return undefined;
}

const TEE_NAMES = { 'sev-snp': 'AMD SEV-SNP (kvm_amd sev_snp=Y)', tdx: 'Intel TDX (kvm_intel tdx=Y)' } as const;
const TEE_FIX = {
  amd: 'enable SEV-SNP in the BIOS and boot with kvm_amd.sev_snp=1 (and mem_encrypt=on)',
  intel: 'enable TDX in the BIOS and boot with kvm_intel.tdx=1',
  any: 'enable SEV-SNP or TDX in the BIOS and boot with kvm_amd.sev_snp=1 or kvm_intel.tdx=1',
} as const;

export function checkHostTee(o: DoctorObservation, mode: CcMode): CheckResult {
  if (o.tee !== 'none') return pass('host-tee', `${TEE_NAMES[o.tee]} is enabled`);
  const finding = 'no host TEE: neither kvm_amd sev_snp nor kvm_intel tdx is Y, so no confidential VM can start';
  const fix = TEE_FIX[cpuVendor(o) ?? 'any'];
  // Mode off runs no confidential VM: a missing TEE is worth knowing but blocks nothing asked for.
  return mode === 'off' ? warn('host-tee', finding, fix) : fail('host-tee', finding, fix);
}

/**
 * The CPU flag against the KVM parameter (docs/facts/real-hosts.md#cpu-flags-for-sev-snp-and-tdx): the flag says the
 * BIOS enabled the TEE, the parameter that KVM will start such guests. One without the other is worth a warning
 * (host-tee judges whether a TEE is there at all).
 */
export function checkCpuTee(o: DoctorObservation): CheckResult {
  const id = 'cpu-tee';
  const cpu = o.host.cpu;
  if (cpu === undefined) {
    return warn(
      id,
      'proc/cpuinfo cannot be read under the host root: the CPU flags cannot be checked against KVM',
      'mount the host /proc (or run on the host)',
    );
  }
  const name = cpu.model || cpu.vendorName || 'the CPU';
  const teeRows = [
    { tee: 'SEV-SNP', flag: 'sev_snp', has: cpu.sevSnp, module: 'kvm_amd', option: 'sev_snp', enabled: o.kvm.sevSnp },
    { tee: 'TDX', flag: 'tdx_host_platform', has: cpu.tdx, module: 'kvm_intel', option: 'tdx', enabled: o.kvm.tdx },
  ];
  const unused = teeRows.find((t) => t.has && t.enabled !== true);
  if (unused) {
    const state = unused.enabled === undefined ? 'absent (module not loaded)' : 'N';
    return warn(
      id,
      `${name} has the ${unused.flag} flag (${unused.tee} enabled in the BIOS) but ${unused.module} ${unused.option} is ${state}: KVM starts no ${unused.tee} guest`,
      `boot with ${unused.module}.${unused.option}=1${unused.tee === 'SEV-SNP' ? ' (and mem_encrypt=on)' : ''}, or with no VM running: modprobe -r ${unused.module} && modprobe ${unused.module} ${unused.option}=1`,
    );
  }
  const unbacked = teeRows.find((t) => !t.has && t.enabled === true);
  if (unbacked) {
    const read = o.host.source === 'systeminformation' ? 'systeminformation' : '/proc/cpuinfo';
    return warn(
      id,
      `${unbacked.module} ${unbacked.option} is Y but the CPU flags (${read}) lack ${unbacked.flag}: the two reads disagree about ${unbacked.tee}`,
      'point --host-root at one host: its /proc and /sys must come from the same machine',
    );
  }
  const enabled = teeRows.filter((t) => t.has).map((t) => `${t.flag} flag and ${t.module} ${t.option}=Y`);
  return pass(
    id,
    enabled.length
      ? `${name}: ${enabled.join('; ')} agree`
      : `${name}: no SEV-SNP or TDX flag (not enabled in the BIOS), as KVM says`,
  );
}

/** The host kernel the NVIDIA reference architecture validates (docs/facts/real-hosts.md#the-host-kernel-version). */
export const MIN_KERNEL = { major: 6, minor: 17 } as const;

export function checkKernelVersion(o: DoctorObservation): CheckResult {
  const id = 'kernel-version';
  const release = o.host.kernel;
  const version = parseKernelVersion(release);
  const minimum = `${MIN_KERNEL.major}.${MIN_KERNEL.minor}`;
  if (version === undefined) {
    return warn(
      id,
      `kernel release ${JSON.stringify(release)} does not start with a version: it cannot be compared with ${minimum}`,
      `check uname -r on the host; the reference architecture validates ${minimum} or later`,
    );
  }
  if (kernelAtLeast(version, MIN_KERNEL.major, MIN_KERNEL.minor)) {
    const rc = version.rc === undefined ? '' : `, a release candidate`;
    return pass(id, `kernel ${release} (${minimum} or later, as the reference architecture validates${rc})`);
  }
  return warn(
    id,
    `kernel ${release} is older than the ${minimum} the NVIDIA reference architecture validates for SEV-SNP and TDX hosts`,
    `install a ${minimum} or later kernel (Ubuntu 25.10 ships one) and reboot`,
  );
}

/** Any lockdown stops gpu-admin-tools (docs/facts/real-hosts.md#kernel-lockdown): no CC mode can be read or set. */
export function checkLockdown(o: DoctorObservation): CheckResult {
  const id = 'lockdown';
  const l = o.lockdown;
  switch (l.state) {
    case 'not-built':
      return pass(id, 'no lockdown LSM in this kernel (securityfs has no lockdown file): nothing is locked down');
    case 'no-securityfs':
      return warn(
        id,
        'securityfs is not mounted under the host root (sys/kernel/security is empty): the kernel lockdown cannot be read',
        'mount it (mount -t securityfs securityfs /sys/kernel/security) or give the doctor the host /sys',
      );
    case 'unknown':
      return warn(
        id,
        `the kernel lockdown cannot be read: ${l.code}: ${l.message}`,
        'run the doctor as root on the host (the file is mode 0600) and check cat /sys/kernel/security/lockdown',
      );
  }
  const blocking = lockdownBlockingBars(l);
  if (blocking === undefined) return pass(id, 'kernel lockdown none: gpu-admin-tools can map GPU BARs');
  const fromCmdline = o.cmdline?.find((a) => a.startsWith('lockdown='));
  return fail(
    id,
    `kernel lockdown ${blocking}${fromCmdline ? ` (${fromCmdline} on the command line)` : ''}: gpu-admin-tools cannot map GPU BARs or write config space (EPERM), so no CC mode can be read or set`,
    `lockdown cannot be lowered while running: ${fromCmdline ? `drop ${fromCmdline} from the kernel command line` : 'boot without lockdown: disable UEFI Secure Boot where the distribution locks Secure Boot kernels down (mokutil --sb-state), or use a kernel without a forced lockdown'}, and reboot`,
  );
}

const IOMMU_ON = { amd: 'amd_iommu=on', intel: 'intel_iommu=on' } as const;
const iommuParam = (o: DoctorObservation) => {
  const vendor = cpuVendor(o);
  return vendor ? IOMMU_ON[vendor] : 'intel_iommu=on (Intel) or amd_iommu=on (AMD)';
};

export function checkIommu(o: DoctorObservation): CheckResult {
  const enableFix = `enable VT-d / AMD-Vi in the BIOS and boot with ${iommuParam(o)} iommu=pt`;
  if (o.iommu.model === 'noiommu') {
    return fail(
      'iommu',
      'VFIO runs in no-IOMMU mode (enable_unsafe_noiommu_mode=Y, no IOMMU unit): no DMA isolation, no CC',
      `${enableFix}, and drop vfio.enable_unsafe_noiommu_mode`,
    );
  }
  if (o.iommu.units.length === 0 || o.iommu.groups === 0) {
    const missing = o.iommu.units.length === 0 ? 'no IOMMU unit in /sys/class/iommu' : 'no IOMMU group';
    return fail('iommu', `IOMMU is off: ${missing}, so VFIO cannot pass GPUs to a VM`, enableFix);
  }
  const finding = `IOMMU on: ${o.iommu.groups} groups, unit ${listed(o.iommu.units, 2)}`;
  if (o.iommu.noiommuParameter) {
    return warn(
      'iommu',
      `${finding}; vfio enable_unsafe_noiommu_mode=Y is set (unused while an IOMMU exists)`,
      'drop vfio.enable_unsafe_noiommu_mode=1 from the kernel command line or modprobe.d',
    );
  }
  return pass('iommu', finding);
}

/**
 * Kernel command line hints (docs/facts/kernel-sysfs-pci.md#iommu-groups): the IOMMU switched on explicitly, in
 * pass-through.
 */
export function checkCmdline(o: DoctorObservation): CheckResult {
  if (o.cmdline === undefined) {
    return warn(
      'kernel-cmdline',
      'proc/cmdline cannot be read under the host root',
      'mount the host /proc (or run on the host) to check the kernel command line',
    );
  }
  const args = new Set(o.cmdline);
  const off = ['intel_iommu=off', 'amd_iommu=off', 'iommu=off'].filter((a) => args.has(a));
  if (off.length > 0) {
    return fail(
      'kernel-cmdline',
      `the kernel command line switches the IOMMU off: ${off.join(' ')}`,
      `replace it with ${iommuParam(o)} iommu=pt`,
    );
  }
  const vendor = cpuVendor(o);
  const wanted = vendor ? [IOMMU_ON[vendor]] : Object.values(IOMMU_ON);
  const missing = [
    ...(wanted.some((a) => args.has(a)) ? [] : [iommuParam(o)]),
    ...(args.has('iommu=pt') ? [] : ['iommu=pt']),
  ];
  if (missing.length === 0)
    return pass('kernel-cmdline', `has ${[...wanted.filter((a) => args.has(a)), 'iommu=pt'].join(' ')}`);
  return warn(
    'kernel-cmdline',
    `the kernel command line lacks ${missing.join(' and ')}`,
    `add ${missing.join(' ')} to GRUB_CMDLINE_LINUX, update-grub and reboot`,
  );
}

const NODE_MODEL = {
  legacy: 'legacy group nodes /dev/vfio/N',
  iommufd: 'iommufd cdevs /dev/vfio/devices/vfioN',
  noiommu: 'no-IOMMU nodes /dev/vfio/noiommu-N',
} as const;

export function checkVfio(o: DoctorObservation): CheckResult {
  const nodes = `device nodes: ${NODE_MODEL[o.iommu.model]}`;
  if (!o.vfio.loaded) {
    return warn(
      'vfio',
      `vfio_pci is not loaded (${nodes})`,
      'run vfio-manager with --load-modules, or modprobe vfio_pci on the host',
    );
  }
  if (o.vfio.driver === undefined) {
    return warn(
      'vfio',
      `vfio_pci is loaded but registers no PCI driver (${nodes})`,
      'modprobe -r vfio_pci && modprobe vfio_pci',
    );
  }
  return pass('vfio', `vfio_pci loaded, driver ${o.vfio.driver}; ${nodes}`);
}

/** Grace GPUs bind to the variant driver modules.alias names (nvgrace_gpu_vfio_pci), not vfio-pci. */
export function checkVfioVariants(o: DoctorObservation): CheckResult[] {
  return o.variants.map((v) =>
    v.loaded && v.registered
      ? pass(`vfio-variant`, `${v.module} loaded for ${listed(v.devices)}`)
      : warn(
          'vfio-variant',
          `${listed(v.devices)} need${v.devices.length === 1 ? 's' : ''} ${v.module} (modules.alias), which is not loaded`,
          `run vfio-manager with --load-modules, or modprobe ${v.module} on the host`,
        ),
  );
}

export function checkGpus(o: DoctorObservation): CheckResult {
  const gpus = gpusOf(o);
  if (gpus.length === 0) {
    return fail(
      'gpus',
      'no NVIDIA GPU on the PCI bus',
      'check that the GPUs show in lspci -d 10de: and that --host-root points at the host',
    );
  }
  const switches = o.devices.length - gpus.length;
  const models = [...new Set(gpus.map((g) => (g.name === '?' ? hex(g.deviceId) : g.name)))].join(', ');
  return pass(
    'gpus',
    `${gpus.length} NVIDIA GPU${gpus.length === 1 ? '' : 's'} (${models})${switches ? `, ${switches} NVSwitch${switches === 1 ? '' : 'es'}` : ''}`,
  );
}

/**
 * CC capability by device ID (docs/facts/cc-mode.md#capability-by-device-id): every GPU for on/devtools; every GPU
 * and NVSwitch for ppcie.
 */
export function checkCapability(o: DoctorObservation, mode: CcMode): CheckResult {
  const gpus = gpusOf(o);
  if (mode === 'off') return pass('cc-capability', 'mode off asks no GPU for a CC mode');
  if (mode === 'ppcie') {
    const bad = o.devices.filter((d) => !d.ppcieCapable);
    if (bad.length === 0) return pass('cc-capability', `all ${o.devices.length} GPUs and NVSwitches can take PPCIe`);
    return fail(
      'cc-capability',
      `no PPCIe on ${listed(bad.map(named))}; ppcie needs every GPU and NVSwitch`,
      bad.some((d) => d.arch === 'blackwell')
        ? 'PPCIe is Hopper only: use mode on for Blackwell (NVLink encryption keeps the switches out of the TCB)'
        : 'use mode on, or a node whose GPUs and NVSwitches are all Hopper / NVSwitch gen3',
    );
  }
  const bad = gpus.filter((d) => !d.ccCapable);
  if (bad.length === 0) return pass('cc-capability', `all ${gpus.length} GPUs have CC mode ${mode}`);
  return fail(
    'cc-capability',
    `no CC mode on ${listed(bad.map(named))}`,
    'CC needs Hopper or Blackwell GPUs: move the others to another node (or fix the table with --cc-capable-ids)',
  );
}

/** The CC tool cannot switch a device that the host driver holds (docs/facts/cc-mode.md#switching-a-device). */
export function checkDrivers(o: DoctorObservation, mode: CcMode): CheckResult {
  const relevant = o.devices.filter((d) => d.kind === 'gpu' || mode === 'ppcie');
  const held = relevant.filter((d) => !isFreeForCcTool(d.driver));
  if (held.length === 0) return pass('gpu-driver', 'no GPU is held by a host driver (VFIO-bound or unbound)');
  const drivers = [...new Set(held.map((d) => d.driver))].join(', ');
  return warn(
    'gpu-driver',
    `${held.length} device${held.length === 1 ? '' : 's'} on the ${drivers} host driver: ${listed(held.map((d) => d.address))}`,
    'bind them to VFIO first (vfio-manager bind): the mode cannot be switched under the host driver',
  );
}

export function checkGroups(o: DoctorObservation): CheckResult {
  const gpus = gpusOf(o);
  const missing = gpus.filter((g) => g.iommuGroup === undefined);
  if (missing.length === 0) return pass('gpu-iommu-group', `every GPU is in an IOMMU group`);
  return fail(
    'gpu-iommu-group',
    `no IOMMU group for ${listed(missing.map((g) => g.address))}: VFIO cannot pass ${missing.length === 1 ? 'it' : 'them'} to a VM`,
    `enable the IOMMU (see the iommu check) and reboot`,
  );
}

/** Where per-model names come from: the host's pci.ids, else the `--pci-ids` fallback (hal loadPciIds). */
export function checkPciIds(o: DoctorObservation): CheckResult {
  const fallback = o.pciIdsFallback;
  const unreadable = fallback && !fallback.readable ? fallback : undefined;
  const fallbackFix =
    'give --pci-ids (GPUCC_PCI_IDS) a readable pci.ids of this machine or container (the gpucc images carry /usr/share/misc/pci.ids), or "" for none';
  if (o.pciIds) {
    if (!unreadable) return pass('pci-ids', `/${o.pciIds}`);
    return warn(
      'pci-ids',
      `/${o.pciIds}, but the --pci-ids fallback is unreadable (${unreadable.error}): kata-manager and the device plugin exit 2 with it`,
      fallbackFix,
    );
  }
  if (fallback?.readable) {
    const names = fallback.nvidiaNames === undefined ? '' : `, ${fallback.nvidiaNames} NVIDIA device names`;
    return pass('pci-ids', `no pci.ids on the host: names come from the --pci-ids fallback ${fallback.file}${names}`);
  }
  if (unreadable) {
    return warn(
      'pci-ids',
      `no pci.ids on the host, and the --pci-ids fallback is unreadable (${unreadable.error}): kata-manager and the device plugin exit 2 with it`,
      `${fallbackFix}; or install pci.ids on the host (package hwdata or pciutils)`,
    );
  }
  return warn(
    'pci-ids',
    'no pci.ids on the host and no --pci-ids fallback: per-model resource names fall back to device IDs',
    'install pci.ids (package hwdata or pciutils), or give the operands --pci-ids FILE (GPUCC_PCI_IDS)',
  );
}

const firmwareFix = (what: string) =>
  `update the firmware (VBIOS) of these devices to a release with ${what} support (see NVIDIA’s Confidential Computing deployment guide), or move them off this node`;

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** `nvidia host driver`, `nvidia-nvswitch, nvidia host drivers`. */
function hostDrivers(devices: readonly DoctorDevice[]): string {
  const drivers = [...new Set(devices.map((d) => d.driver))];
  return `${drivers.join(', ')} host driver${drivers.length === 1 ? '' : 's'}`;
}

/** `8 GPUs`, `8 GPUs and 4 NVSwitches`. */
function devicesCount(devices: readonly DoctorDevice[]): string {
  const gpus = devices.filter((d) => d.kind === 'gpu').length;
  const switches = devices.length - gpus;
  const parts = [
    ...(gpus ? [plural(gpus, 'GPU')] : []),
    ...(switches ? [plural(switches, 'NVSwitch', 'NVSwitches')] : []),
  ];
  return parts.join(' and ');
}

/** `CC off`, `CC on ×7, off ×1; PPCIe off`: the modes the devices answered. */
function modesOf(answers: readonly FirmwareAnswer[]): string {
  const tally = (key: 'cc' | 'ppcie') => {
    const counts = new Map<string, number>();
    for (const a of answers) {
      const value = a.result === 'supported' ? a.modes[key] : undefined;
      if (value !== undefined) counts.set(value, (counts.get(value) ?? 0) + 1);
    }
    if (counts.size === 0) return undefined;
    const values = [...counts].map(([v, n]) => (counts.size === 1 ? v : `${v} ×${n}`));
    return `${key === 'cc' ? 'CC' : 'PPCIe'} ${values.join(', ')}`;
  };
  return [tally('cc'), tally('ppcie')].filter(Boolean).join('; ');
}

/**
 * Firmware support for the mode (docs/facts/cc-tools.md#gpu-admin-tools-messages), from what gpu-admin-tools
 * answered: every device answers its modes = pass; a device the tool refuses CC or PPCIe = fail; the tool missing,
 * too slow, a device it could not read or one on a host driver (never asked) = warn, the check cannot be made.
 */
export function checkFirmware(o: DoctorObservation, mode: CcMode): CheckResult | undefined {
  const f = o.firmware;
  if (f === undefined) return undefined;
  const id = 'cc-firmware';
  const what = mode === 'ppcie' ? 'CC and PPCIe' : 'CC';
  switch (f.state) {
    case 'not-needed':
      return pass(id, f.reason);
    case 'no-tool':
      return warn(
        id,
        `gpu-admin-tools not found at ${f.tool}: firmware support for ${what} cannot be checked`,
        'install NVIDIA gpu-admin-tools and pass --gpu-admin-tools PATH (with --python python3 if the script is not executable)',
      );
    case 'locked-down':
      return warn(
        id,
        `gpu-admin-tools not run: kernel lockdown ${f.lockdown} denies its BAR mapping, so firmware support for ${what} cannot be checked`,
        'lift the lockdown (see the lockdown check) and run the doctor again',
      );
    case 'timed-out':
      return warn(
        id,
        `gpu-admin-tools did not answer within ${f.deadlineMs / 1000} s: firmware support for ${what} is unknown`,
        `run ${f.tool} --devices all --query-cc-mode by hand and check the devices and dmesg; raise --tool-timeout if it is only slow`,
      );
  }
  const lacking = (kind: 'cc' | 'ppcie') =>
    f.answers.filter((a): a is Extract<FirmwareAnswer, { result: 'lacks' }> => a.result === 'lacks' && a.what === kind);
  const unreadable = f.answers.filter(
    (a): a is Extract<FirmwareAnswer, { result: 'unreadable' }> => a.result === 'unreadable',
  );
  const supported = f.answers.filter((a) => a.result === 'supported');
  const notChecked = [
    ...(f.held.length
      ? [`${plural(f.held.length, 'device')} on the ${hostDrivers(f.held)} (${listed(f.held.map((d) => d.address))})`]
      : []),
    ...(unreadable.length
      ? [
          `${plural(unreadable.length, 'device')} unreadable (${listed(unreadable.map((a) => a.device.address))}: ${unreadable[0]!.error})`,
        ]
      : []),
  ];
  const noCc = lacking('cc');
  const noPpcie = lacking('ppcie');
  if (noCc.length || noPpcie.length) {
    const parts = [
      ...(noCc.length
        ? [
            `firmware without CC: ${listed(
              noCc.map((a) => named(a.device)),
              8,
            )} (gpu-admin-tools: "Querying CC mode is not supported")`,
          ]
        : []),
      ...(noPpcie.length
        ? [
            `firmware without PPCIe: ${listed(
              noPpcie.map((a) => named(a.device)),
              8,
            )} (gpu-admin-tools: "does not support PPCIe on current FW")`,
          ]
        : []),
      ...(notChecked.length ? [`not checked: ${notChecked.join(', ')}`] : []),
    ];
    return fail(
      id,
      parts.join('; '),
      firmwareFix([...(noCc.length ? ['CC'] : []), ...(noPpcie.length ? ['PPCIe'] : [])].join(' and ')),
    );
  }
  if (notChecked.length) {
    const answered = supported.length
      ? `${devicesCount(supported.map((a) => a.device))} answer (${modesOf(supported)}); `
      : '';
    const fixes = [
      ...(f.held.length
        ? ['bind them to VFIO (vfio-manager bind) and run the doctor again: the tool is never run under a host driver']
        : []),
      ...(unreadable.length
        ? [
            `run ${f.tool} --gpu-bdf=${unreadable[0]!.device.address} --query-cc-mode by hand and check the device and dmesg`,
          ]
        : []),
    ];
    return warn(id, `${answered}firmware support for ${what} not checked: ${notChecked.join(', ')}`, fixes.join('; '));
  }
  const whose =
    supported.length === 1 ? named(supported[0]!.device) : `all ${devicesCount(supported.map((a) => a.device))}`;
  // What was asked: no PPCIe question goes to a device without PPCIe (a B200; cc-capability fails it).
  const answered = supported.some((a) => a.modes.ppcie !== undefined) ? 'CC and PPCIe' : 'CC';
  return pass(id, `the firmware of ${whose} supports ${answered}: each answers its mode (${modesOf(supported)})`);
}

export function checkDevicePluginDir(o: DoctorObservation): CheckResult {
  if (o.devicePluginDir) return pass('device-plugin-dir', '/var/lib/kubelet/device-plugins exists');
  return warn(
    'device-plugin-dir',
    '/var/lib/kubelet/device-plugins is missing: no kubelet here, or it runs with another --root-dir',
    'start the kubelet on this node (or point --host-root at the host root)',
  );
}

export function checkCdiDir(o: DoctorObservation): CheckResult {
  const [first] = o.cdi.existing;
  if (first) return pass('cdi-dir', `/${first} exists`);
  return warn(
    'cdi-dir',
    'neither /var/run/cdi nor /etc/cdi exists, so no CDI spec can be found by the runtime',
    'mkdir -p /var/run/cdi (kata-manager writes its spec there) and enable CDI in containerd',
  );
}

const optional = (check: CheckResult | undefined) => (check ? [check] : []);

/** Every check, in the order the report shows them. Per-GPU checks only when there is a GPU to check. */
export function runChecks(o: DoctorObservation, mode: CcMode): CheckResult[] {
  const gpus = checkGpus(o);
  return [
    checkHostTee(o, mode),
    checkCpuTee(o),
    checkKernelVersion(o),
    checkLockdown(o),
    checkIommu(o),
    checkCmdline(o),
    checkVfio(o),
    ...checkVfioVariants(o),
    gpus,
    ...(gpus.status === 'fail'
      ? []
      : [checkCapability(o, mode), ...optional(checkFirmware(o, mode)), checkDrivers(o, mode), checkGroups(o)]),
    checkPciIds(o),
    checkDevicePluginDir(o),
    checkCdiDir(o),
  ];
}
