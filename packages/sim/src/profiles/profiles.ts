import { GpuccError } from '@gpucc/hal';
import type { CpuSpec, DeviceSpec, HostTee, NodeSpec, NvidiaDriverKind, SimLockdown } from '../node/spec.js';
import { HOST_TEES, INTEL, MELLANOX, NVIDIA, SIM_LOCKDOWNS } from '../node/spec.js';
import { standardDrivers, VMD_DRIVER } from './drivers.js';

export interface ProfileOptions {
  tee?: HostTee;
  /** `scale` profile: number of GPU cards. */
  gpus?: number;
  /** `scale` profile: functions per card, 1 (data-centre GPU) to 4 (GPU, audio, USB, UCSI). */
  functionsPerCard?: number;
  /** Whether vfio_pci is loaded at creation (default true); false exercises modprobe. */
  vfioLoaded?: boolean;
  /** The NVIDIA driver build (default `datacenter`: no unbind lock; `vgpu-host` has one). */
  nvidiaDriver?: NvidiaDriverKind;
  /** `uname -r` (default a 6.17 release, the reference architecture's minimum). */
  kernelRelease?: string;
  /** The kernel lockdown level (default `none`), or `not-built`. */
  lockdown?: SimLockdown;
  /**
   * The TEE the CPU and BIOS offer (its cpuinfo flag); default the node's TEE. `--tee none --cpu-tee
   * sev-snp` is a host whose kvm_amd was loaded without sev_snp=1.
   */
  cpuTee?: HostTee;
  /** Add an Intel VMD controller with an NVMe drive in its domain `10000` (Intel servers, TDX hosts). */
  vmd?: boolean;
  /** The kernel has iommufd (`/dev/iommu`); default: the profile's choice. */
  iommufd?: boolean;
  /**
   * The kernel makes per-device VFIO cdevs (CONFIG_VFIO_DEVICE_CDEV, which needs iommufd); false lays
   * out an iommufd kernel without them. Default: yes wherever there is iommufd.
   */
  vfioCdev?: boolean;
}

export interface Profile {
  name: string;
  description: string;
  defaultTee: HostTee;
  /** Takes --gpus and --functions; every other profile has a fixed set of devices and refuses them. */
  sized?: true;
  build(options: ProfileOptions): NodeSpec;
}

// A 6.17 kernel: the NVIDIA reference architecture's minimum (docs/facts/real-hosts.md#the-host-kernel-version).
const KERNEL_RELEASE = '6.17.0-1007-gpucc-sim';
const HOST_OS = { name: 'Ubuntu', versionId: '25.10' };
const CPUS = {
  amd: 'AMD EPYC 9654 96-Core Processor',
  intel: 'INTEL(R) XEON(R) PLATINUM 8580',
} as const;

const vendorOfTee = (tee: HostTee): CpuSpec['vendor'] | undefined =>
  tee === 'sev-snp' ? 'amd' : tee === 'tdx' ? 'intel' : undefined;

/**
 * An EPYC for SEV-SNP, a Xeon for TDX; with no TEE, the vendor of the CPU flag or of the profile's own
 * TEE (a B200 board stays an Intel host). A CPU flag of the other vendor is refused.
 */
function cpuFor(tee: HostTee, cpuTee: HostTee, profileTee: HostTee): CpuSpec {
  const vendor = vendorOfTee(tee) ?? vendorOfTee(cpuTee) ?? vendorOfTee(profileTee) ?? 'amd';
  const flagVendor = vendorOfTee(cpuTee);
  if (flagVendor !== undefined && flagVendor !== vendor) {
    throw new GpuccError(
      'ERR_GPUCC_USAGE',
      `--cpu-tee ${cpuTee} needs an ${flagVendor} CPU, and --tee ${tee} an ${vendor} one`,
      {
        hint: 'give --cpu-tee the TEE of the same vendor as --tee (sev-snp: AMD, tdx: Intel), or none',
      },
    );
  }
  return { vendor, model: CPUS[vendor], tee: cpuTee };
}

function checkedRelease(release: string): string {
  if (/^[A-Za-z0-9._+-]+$/.test(release)) return release;
  throw new GpuccError('ERR_GPUCC_USAGE', `kernel release ${JSON.stringify(release)} is not one uname -r prints`, {
    hint: 'use letters, digits and . _ + - only, e.g. 6.17.0-1007-nvidia or 6.8.0-49-generic',
  });
}
const NVIDIA_DRIVER_VERSION = '580.95.05';

/** Allocates IOMMU group numbers in creation order, as the kernel does at boot. */
class GroupCounter {
  private next: number;
  constructor(start = 0) {
    this.next = start;
  }
  take(): number {
    return this.next++;
  }
}

function bdf(domain: number, bus: number, device: number, fn: number): string {
  const h = (v: number, w: number) => v.toString(16).padStart(w, '0');
  return `${h(domain, 4)}:${h(bus, 2)}:${h(device, 2)}.${fn}`;
}

function bridge(
  address: string,
  parent: string,
  group: number | undefined,
  numaNode: number,
  device = 0xc030,
): DeviceSpec {
  return {
    address,
    vendor: device === 0xc030 ? 0x1000 : 0x1022,
    device,
    class: 0x060400,
    // Bridges have a Subsystem ID only with the SSVID capability; these read 0 (docs/facts/real-hosts.md#subsystem-ids-on-bridges).
    subsystemVendor: 0,
    subsystemDevice: 0,
    revision: 0xb0,
    numaNode,
    parent,
    ...(group === undefined ? {} : { iommuGroup: group }),
    driver: 'pcieport',
    resetMethods: [],
  };
}

/**
 * A root port plus a two-level PCIe switch, as on HGX boards: returns the bridge functions and the
 * sysfs parent path of the endpoint behind them.
 */
function switchChain(
  domain: number,
  rootBus: number,
  groups: GroupCounter | undefined,
  numaNode: number,
): { bridges: DeviceSpec[]; parent: string; endpointBus: number } {
  const root = `pci${domain.toString(16).padStart(4, '0')}:${rootBus.toString(16).padStart(2, '0')}`;
  const port = bdf(domain, rootBus, 1, 1);
  const up = bdf(domain, rootBus + 1, 0, 0);
  const down = bdf(domain, rootBus + 2, 0, 0);
  const bridges = [
    bridge(port, root, groups?.take(), numaNode, 0x14ab),
    bridge(up, `${root}/${port}`, groups?.take(), numaNode),
    bridge(down, `${root}/${port}/${up}`, groups?.take(), numaNode),
  ];
  return { bridges, parent: `${root}/${port}/${up}/${down}`, endpointBus: rootBus + 3 };
}

interface GpuModel {
  device: number;
  subsystemDevice: number;
  ccName: string;
  class?: number;
}

const H100_SXM: GpuModel = { device: 0x2330, subsystemDevice: 0x16c1, ccName: 'H100-SXM' };
const H100_PCIE: GpuModel = { device: 0x2331, subsystemDevice: 0x1626, ccName: 'H100' };
const H200_SXM: GpuModel = { device: 0x2335, subsystemDevice: 0x18be, ccName: 'H200' };
const B200_SXM: GpuModel = { device: 0x2901, subsystemDevice: 0x1999, ccName: 'B200' };
const GH200: GpuModel = { device: 0x2342, subsystemDevice: 0x16eb, ccName: 'GH200' };
// lspci names 10de:2bb5 `GB202GL [RTX PRO 6000 Blackwell Server Edition]`, a 3D controller (0302).
const RTX_PRO_6000_BSE: GpuModel = { device: 0x2bb5, subsystemDevice: 0x204e, ccName: 'RTX PRO 6000 BSE' };
/** GB202's HD audio function (10de:22e8), function 1 of the card, in the GPU's IOMMU group. */
const GB202_AUDIO = 0x22e8;

function gpu(
  address: string,
  model: GpuModel,
  parent: string,
  group: number | undefined,
  numaNode: number,
  index: number,
): DeviceSpec {
  return {
    address,
    vendor: NVIDIA,
    device: model.device,
    class: model.class ?? 0x030200,
    subsystemVendor: NVIDIA,
    subsystemDevice: model.subsystemDevice,
    revision: 0xa1,
    numaNode,
    parent,
    ...(group === undefined ? {} : { iommuGroup: group }),
    driver: 'nvidia',
    resetMethods: ['flr', 'bus'],
    ccName: model.ccName,
    bar0: 0xa8000000000 + index * 0x2000000000,
  };
}

/**
 * An Intel VMD controller (8086:28c0, the server part, bound to `vmd`) with one NVMe drive (8086:0a54)
 * behind a VMD root port in the domain its driver creates: `10000:00:02.0` bridges to bus 01, where the
 * drive is `10000:01:00.0`, all below the controller's directory (docs/facts/real-hosts.md#pci-domains-can-be-wider-than-four-digits).
 * The simulator gives each function its own IOMMU group; no subsystem IDs (0x0000). The root port's
 * device ID (352a) stands for any Intel root port.
 */
function vmdDomain(firstGroup: number): DeviceSpec[] {
  // Device 05.5 of a CPU's root bus, where Skylake-SP hosts show VMD (a bus no profile uses for cards).
  const controllerAddress = bdf(0, 0xd7, 5, 5);
  const rootBus = 'pci10000:00';
  const controllerDir = `pci0000:d7/${controllerAddress}`;
  const port = bridge('10000:00:02.0', `${controllerDir}/${rootBus}`, firstGroup + 1, 0, 0x352a);
  const none = { subsystemVendor: 0, subsystemDevice: 0, revision: 0x04, numaNode: 0 };
  return [
    {
      ...none,
      address: controllerAddress,
      vendor: INTEL,
      device: 0x28c0,
      class: 0x010400, // RAID bus controller, as lspci shows VMD
      parent: 'pci0000:d7',
      iommuGroup: firstGroup,
      driver: VMD_DRIVER.name,
      resetMethods: [],
      vmdRootBus: rootBus,
    },
    { ...port, vendor: INTEL },
    {
      ...none,
      address: '10000:01:00.0',
      vendor: INTEL,
      device: 0x0a54,
      class: 0x010802,
      parent: `${controllerDir}/${rootBus}/${port.address}`,
      iommuGroup: firstGroup + 2,
      driver: 'nvme',
      resetMethods: ['flr', 'bus'],
    },
  ];
}

function baseNode(
  profile: string,
  tee: HostTee,
  profileDevices: DeviceSpec[],
  options: ProfileOptions,
  extra: Partial<NodeSpec> = {},
): NodeSpec {
  const nextGroup = Math.max(-1, ...profileDevices.map((d) => d.iommuGroup ?? -1)) + 1;
  const iommu = extra.iommu ?? true;
  const devices = options.vmd
    ? [...profileDevices, ...vmdDomain(nextGroup).map((d) => (iommu ? d : withoutGroup(d)))]
    : profileDevices;
  const drivers = standardDrivers({ vfioLoaded: options.vfioLoaded ?? true, nvidiaLoaded: true });
  return {
    version: 1,
    profile,
    tee,
    iommu: true,
    iommufd: false,
    noiommu: false,
    kernelRelease: checkedRelease(options.kernelRelease ?? KERNEL_RELEASE),
    cpu: cpuFor(tee, options.cpuTee ?? tee, findProfile(profile).defaultTee),
    lockdown: options.lockdown ?? 'none',
    os: HOST_OS,
    nvidiaDriverVersion: NVIDIA_DRIVER_VERSION,
    nvidiaDriverKind: options.nvidiaDriver ?? 'datacenter',
    drivers: options.vmd ? [...drivers, { ...VMD_DRIVER }] : drivers,
    devices,
    ...extra,
    ...(options.iommufd === undefined ? {} : { iommufd: options.iommufd }),
    ...(options.vfioCdev === undefined ? {} : { vfioCdev: options.vfioCdev }),
  };
}

function withoutGroup(device: DeviceSpec): DeviceSpec {
  const { iommuGroup: _none, ...rest } = device;
  return rest;
}

/** 8 GPUs (and optionally 4 NVSwitches) behind PCIe switches, each endpoint in its own group. */
function hgx(model: GpuModel, nvswitches: number, groups: GroupCounter | undefined): DeviceSpec[] {
  const devices: DeviceSpec[] = [];
  for (let i = 0; i < 8; i++) {
    const numa = i < 4 ? 0 : 1;
    const chain = switchChain(0, 0x10 + i * 0x10, groups, numa);
    devices.push(...chain.bridges);
    devices.push(gpu(bdf(0, chain.endpointBus, 0, 0), model, chain.parent, groups?.take(), numa, i));
  }
  if (nvswitches > 0) {
    const chain = switchChain(0, 0x04, groups, 0);
    devices.push(...chain.bridges.slice(0, 2));
    const up = chain.parent.split('/').slice(0, 3).join('/');
    for (let s = 0; s < nvswitches; s++) {
      const down = bdf(0, 0x06, s, 0);
      devices.push(bridge(down, up, groups?.take(), 0));
      devices.push({
        address: bdf(0, 0x07 + s, 0, 0),
        vendor: NVIDIA,
        device: 0x22a3,
        class: 0x068000,
        subsystemVendor: NVIDIA,
        subsystemDevice: 0x1796,
        revision: 0xa1,
        numaNode: 0,
        parent: `${up}/${down}`,
        ...(groups ? { iommuGroup: groups.take() } : {}),
        driver: 'nvidia-nvswitch',
        resetMethods: ['bus'],
        ccName: 'NVSwitch_gen3',
        bar0: 0x2c000000000 + s * 0x2000000,
      });
    }
  }
  return devices;
}

/** PCIe cards, one per root port, each GPU with its audio function in one IOMMU group (no NVLink). */
function pcieCards(model: GpuModel, count: number, groups: GroupCounter): DeviceSpec[] {
  const devices: DeviceSpec[] = [];
  for (let i = 0; i < count; i++) {
    const numa = i < count / 2 ? 0 : 1;
    const bus = 0x20 + i * 0x20;
    const port = bdf(0, bus, 1, 1);
    const root = `pci0000:${bus.toString(16).padStart(2, '0')}`;
    const group = groups.take();
    devices.push(bridge(port, root, groups.take(), numa, 0x14ab));
    const card = gpu(bdf(0, bus + 1, 0, 0), model, `${root}/${port}`, group, numa, i);
    const audio: DeviceSpec = {
      address: bdf(0, bus + 1, 0, 1),
      vendor: NVIDIA,
      device: GB202_AUDIO,
      class: 0x040300,
      subsystemVendor: NVIDIA,
      subsystemDevice: model.subsystemDevice,
      revision: 0xa1,
      numaNode: numa,
      parent: `${root}/${port}`,
      iommuGroup: group,
      driver: 'snd_hda_intel',
      resetMethods: ['flr', 'bus'],
    };
    devices.push({ ...card, consumers: [audio.address] }, audio);
  }
  return devices;
}

/** One workstation card: VGA GPU + HD audio + USB xHCI + UCSI, all in one IOMMU group. */
function workstationCard(
  domain: number,
  bus: number,
  parent: string,
  group: number | undefined,
  numaNode: number,
  functions = 4,
): DeviceSpec[] {
  const base = { vendor: NVIDIA, subsystemVendor: 0x10de, subsystemDevice: 0x12a0, revision: 0xa1, numaNode, parent };
  const withGroup = group === undefined ? {} : { iommuGroup: group };
  const fns: DeviceSpec[] = [
    {
      ...base,
      ...withGroup,
      address: bdf(domain, bus, 0, 0),
      device: 0x1eb1,
      class: 0x030000,
      driver: 'nvidia',
      resetMethods: ['bus'],
    },
    {
      ...base,
      ...withGroup,
      address: bdf(domain, bus, 0, 1),
      device: 0x10f8,
      class: 0x040300,
      driver: 'snd_hda_intel',
      resetMethods: ['flr', 'bus'],
    },
    {
      ...base,
      ...withGroup,
      address: bdf(domain, bus, 0, 2),
      device: 0x1ad8,
      class: 0x0c0330,
      driver: 'xhci_hcd',
      resetMethods: ['bus'],
    },
    {
      ...base,
      ...withGroup,
      address: bdf(domain, bus, 0, 3),
      device: 0x1ad9,
      class: 0x0c8000,
      driver: 'nvidia-gpu',
      resetMethods: ['bus'],
    },
  ].slice(0, functions);
  const first = fns[0]!;
  if (fns.length > 1) first.consumers = fns.slice(1).map((f) => f.address);
  return fns;
}

export const PROFILES: readonly Profile[] = [
  {
    name: 'h100-pcie-1',
    description: 'one H100 PCIe (10de:2331, subsystem 10de:1626) behind a root port',
    defaultTee: 'sev-snp',
    build: (o) => {
      const groups = new GroupCounter(10);
      const port = bdf(0, 0x40, 1, 1);
      return baseNode(
        'h100-pcie-1',
        o.tee ?? 'sev-snp',
        [
          bridge(port, 'pci0000:40', groups.take(), 0, 0x14ab),
          gpu(bdf(0, 0x41, 0, 0), H100_PCIE, `pci0000:40/${port}`, groups.take(), 0, 0),
        ],
        o,
      );
    },
  },
  {
    name: 'hgx-h100-8',
    description: 'HGX H100: 8 H100 SXM5 (10de:2330) and 4 NVSwitch gen3 (10de:22a3), each in its own IOMMU group',
    defaultTee: 'sev-snp',
    build: (o) => baseNode('hgx-h100-8', o.tee ?? 'sev-snp', hgx(H100_SXM, 4, new GroupCounter(20)), o),
  },
  {
    name: 'hgx-b200-8',
    description: 'HGX B200: 8 B200 (10de:2901, subsystem 10de:1999); NVSwitches are not PCI functions in CC',
    defaultTee: 'tdx',
    build: (o) => baseNode('hgx-b200-8', o.tee ?? 'tdx', hgx(B200_SXM, 0, new GroupCounter(20)), o),
  },
  {
    name: 'rtx-pro-6000-4',
    description:
      'four RTX PRO 6000 Blackwell Server Edition (GB202, 10de:2bb5) PCIe cards, each with its audio function (10de:22e8) in its IOMMU group',
    defaultTee: 'sev-snp',
    build: (o) =>
      baseNode('rtx-pro-6000-4', o.tee ?? 'sev-snp', pcieCards(RTX_PRO_6000_BSE, 4, new GroupCounter(60)), o),
  },
  {
    name: 'workstation-mixed',
    description:
      'a VGA GPU with audio, USB and UCSI functions in one group (consumer links on .0), and an H100 PCIe sharing its group with a ConnectX NIC and a switch port (no ACS)',
    defaultTee: 'none',
    build: (o) => {
      const card = workstationCard(0, 0x01, 'pci0000:00/0000:00:01.0', 12, 0);
      const rootPort = bridge('0000:00:01.0', 'pci0000:00', 1, 0, 0x14ab);
      // Behind a switch without ACS: both downstream ports, the GPU and the NIC share group 30.
      const up = bridge('0000:40:01.0', 'pci0000:40', 29, 0, 0x14ab);
      const switchUp = 'pci0000:40/0000:40:01.0';
      const downGpu = bridge('0000:41:00.0', switchUp, 30, 0);
      const downNic = bridge('0000:41:01.0', switchUp, 30, 0);
      const h100 = gpu('0000:42:00.0', H100_PCIE, `${switchUp}/0000:41:00.0`, 30, 0, 1);
      const nic: DeviceSpec = {
        address: '0000:43:00.0',
        vendor: MELLANOX,
        device: 0x1021,
        class: 0x020000,
        subsystemVendor: MELLANOX,
        subsystemDevice: 0x0023,
        revision: 0x00,
        numaNode: 0,
        parent: `${switchUp}/0000:41:01.0`,
        iommuGroup: 30,
        driver: 'mlx5_core',
        resetMethods: ['flr', 'bus'],
      };
      return baseNode('workstation-mixed', o.tee ?? 'none', [rootPort, ...card, up, downGpu, downNic, h100, nic], o);
    },
  },
  {
    name: 'iommufd-h200-2',
    description:
      'two H200 (10de:2335, subsystem 10de:18be) on an iommufd host: /dev/iommu, per-device vfio cdevs on bind',
    defaultTee: 'tdx',
    build: (o) => {
      const groups = new GroupCounter(40);
      const devices: DeviceSpec[] = [];
      for (let i = 0; i < 2; i++) {
        const chain = switchChain(0, 0x20 + i * 0x20, groups, i);
        devices.push(
          ...chain.bridges,
          gpu(bdf(0, chain.endpointBus, 0, 0), H200_SXM, chain.parent, groups.take(), i, i),
        );
      }
      return baseNode('iommufd-h200-2', o.tee ?? 'tdx', devices, o, { iommufd: true });
    },
  },
  {
    name: 'grace-gh200-1',
    description:
      'one GH200 (10de:2342) whose modules.alias names the nvgrace_gpu_vfio_pci variant driver (not loaded until modprobe)',
    defaultTee: 'none',
    build: (o) => {
      const port = bdf(0x0009, 0x00, 0, 0);
      return baseNode(
        'grace-gh200-1',
        o.tee ?? 'none',
        [bridge(port, 'pci0009:00', 8, 0, 0x14ab), gpu(bdf(0x0009, 0x01, 0, 0), GH200, `pci0009:00/${port}`, 9, 0, 0)],
        o,
      );
    },
  },
  {
    name: 'no-iommu',
    description: 'one H100 PCIe on a host with the IOMMU off: no groups, VFIO cannot bind',
    defaultTee: 'none',
    build: (o) => {
      const port = bdf(0, 0x40, 1, 1);
      return baseNode(
        'no-iommu',
        o.tee ?? 'none',
        [
          bridge(port, 'pci0000:40', undefined, 0, 0x14ab),
          gpu(bdf(0, 0x41, 0, 0), H100_PCIE, `pci0000:40/${port}`, undefined, 0, 0),
        ],
        o,
        { iommu: false },
      );
    },
  },
  {
    name: 'scale',
    description: 'N GPU cards (--gpus, default 256) with 1-4 functions each (--functions, default 4), for benchmarks',
    defaultTee: 'sev-snp',
    sized: true,
    build: (o) => {
      const cards = o.gpus ?? 256;
      const functions = o.functionsPerCard ?? 4;
      if (
        !Number.isInteger(cards) ||
        cards < 1 ||
        cards > 4096 ||
        !Number.isInteger(functions) ||
        functions < 1 ||
        functions > 4
      ) {
        throw new GpuccError(
          'ERR_GPUCC_USAGE',
          `scale profile: --gpus ${cards} --functions ${functions} is out of range`,
          {
            hint: 'use 1 to 4096 GPUs and 1 to 4 functions per card',
          },
        );
      }
      const devices: DeviceSpec[] = [];
      for (let i = 0; i < cards; i++) {
        const domain = Math.floor(i / 128);
        const bus = (i % 128) + 1;
        const root = `pci${domain.toString(16).padStart(4, '0')}:00`;
        const card =
          functions === 1
            ? [gpu(bdf(domain, bus, 0, 0), H100_SXM, root, 100 + i, i % 2, i)]
            : workstationCard(domain, bus, root, 100 + i, i % 2, functions);
        devices.push(...card);
      }
      return baseNode('scale', o.tee ?? 'sev-snp', devices, o);
    },
  },
];

export function findProfile(name: string): Profile {
  const profile = PROFILES.find((p) => p.name === name);
  if (!profile) {
    throw new GpuccError('ERR_GPUCC_SIM_UNKNOWN_PROFILE', `unknown profile ${JSON.stringify(name)}`, {
      hint: `use one of: ${PROFILES.map((p) => p.name).join(', ')}`,
      details: { profile: name },
    });
  }
  return profile;
}

export function parseSimLockdown(value: string): SimLockdown {
  if ((SIM_LOCKDOWNS as readonly string[]).includes(value)) return value as SimLockdown;
  throw new GpuccError('ERR_GPUCC_USAGE', `unknown lockdown level ${JSON.stringify(value)}`, {
    hint: `use one of: ${SIM_LOCKDOWNS.join(', ')}`,
  });
}

export function parseTee(value: string): HostTee {
  if ((HOST_TEES as readonly string[]).includes(value)) return value as HostTee;
  throw new GpuccError('ERR_GPUCC_USAGE', `unknown host TEE ${JSON.stringify(value)}`, {
    hint: `use one of: ${HOST_TEES.join(', ')}`,
  });
}
