import type { Systeminformation } from 'systeminformation';
import { isGpuccError } from '../errors/index.js';
import type { HostRoot } from '../fs/index.js';
import { kernelRelease } from './kernel.js';

/**
 * Host facts for reports and node labels: CPU vendor and model, its TEE flags, kernel and OS release
 * (docs/facts/real-hosts.md#cpu-flags-for-sev-snp-and-tdx). On the machine's own root they come from
 * the `systeminformation` package; under any other host root (a mounted host, a simulated node) from
 * that root's files, since systeminformation only ever reads this machine's /proc and /etc.
 */
export interface HostFacts {
  source: 'systeminformation' | 'host-root';
  /** Absent when /proc/cpuinfo cannot be read. */
  cpu?: CpuFacts;
  /** `uname -r`. */
  kernel: string;
  /** os-release PRETTY_NAME (or NAME VERSION_ID); absent when there is no os-release. */
  os?: string;
}

export type CpuVendor = 'amd' | 'intel' | 'other';

export interface CpuFacts {
  vendor: CpuVendor;
  /** As the CPU names it (`AuthenticAMD`, `GenuineIntel`), or the package's manufacturer name. */
  vendorName: string;
  model: string;
  /** `sev_snp` in the flags: the CPU supports SEV-SNP and the BIOS enabled it. */
  sevSnp: boolean;
  /** `tdx_host_platform` in the flags: the BIOS enabled TDX and the kernel initialised it. */
  tdx: boolean;
}

export const SEV_SNP_FLAG = 'sev_snp';
export const TDX_HOST_FLAG = 'tdx_host_platform';

const VENDORS: ReadonlyArray<[RegExp, CpuVendor]> = [
  [/^(AuthenticAMD|AMD)\b/i, 'amd'],
  [/^(GenuineIntel|Intel)\b/i, 'intel'],
];
const vendorOf = (name: string): CpuVendor => VENDORS.find(([re]) => re.test(name.trim()))?.[1] ?? 'other';

function cpuFacts(vendorName: string, model: string, flags: string): CpuFacts {
  const set = new Set(flags.split(/\s+/));
  return {
    vendor: vendorOf(vendorName),
    vendorName,
    model: model.replace(/\s+/g, ' ').trim(),
    sevSnp: set.has(SEV_SNP_FLAG),
    tdx: set.has(TDX_HOST_FLAG),
  };
}

/** The first processor block of /proc/cpuinfo (`key\t: value` lines); every CPU shows the same flags. */
export function parseCpuinfo(text: string): CpuFacts | undefined {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.trim() === '' && fields.size > 0) break;
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const key = line.slice(0, colon).trim();
    if (!fields.has(key)) fields.set(key, line.slice(colon + 1).trim());
  }
  const vendorName = fields.get('vendor_id') ?? fields.get('CPU implementer') ?? '';
  if (fields.size === 0) return undefined;
  // x86 prints `flags`; arm64 prints `Features` and no model name.
  return cpuFacts(vendorName, fields.get('model name') ?? '', fields.get('flags') ?? fields.get('Features') ?? '');
}

/** os-release(5): shell-style KEY=value lines, values optionally quoted. */
export function parseOsRelease(text: string): string | undefined {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const match = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (!match) continue;
    const raw = match[2]!.trim();
    const unquoted = /^(["']).*\1$/.test(raw) ? raw.slice(1, -1).replace(/\\(["\\$`])/g, '$1') : raw;
    fields.set(match[1]!, unquoted);
  }
  const pretty = fields.get('PRETTY_NAME');
  if (pretty) return pretty;
  const name = [fields.get('NAME'), fields.get('VERSION_ID')].filter(Boolean).join(' ');
  return name || undefined;
}

/** Reads a host file that may be missing or unreadable: either way there is no fact to give. */
function readQuiet(sysfs: HostRoot, file: string): string | undefined {
  try {
    return sysfs.readOptional(file);
  } catch (error) {
    if (isGpuccError(error)) return undefined;
    throw error;
  }
}

/** The facts from the host root's own files: proc/cpuinfo, proc/sys/kernel/osrelease, etc/os-release. */
export function rootedHostFacts(sysfs: HostRoot): HostFacts {
  const cpuinfo = readQuiet(sysfs, 'proc/cpuinfo');
  const cpu = cpuinfo === undefined ? undefined : parseCpuinfo(cpuinfo);
  // os-release(5): /etc/os-release, else /usr/lib/os-release.
  const osRelease = readQuiet(sysfs, 'etc/os-release') ?? readQuiet(sysfs, 'usr/lib/os-release');
  const os = osRelease === undefined ? undefined : parseOsRelease(osRelease);
  return {
    source: 'host-root',
    ...(cpu ? { cpu } : {}),
    kernel: kernelRelease(sysfs),
    ...(os ? { os } : {}),
  };
}

/** The two systeminformation calls the facts need; injected in tests (it reads this machine only). */
export interface SystemInformation {
  cpu(): Promise<Systeminformation.CpuData>;
  osInfo(): Promise<Systeminformation.OsData>;
}

/**
 * systeminformation's answer as our facts. It gives empty strings for what it could not read; such
 * facts are left out here (and read from the root's files by readHostFacts).
 */
export function factsFromSystemInformation(
  cpu: Systeminformation.CpuData,
  os: Systeminformation.OsData,
): Partial<HostFacts> & { source: 'systeminformation' } {
  const vendorName = cpu.manufacturer || cpu.vendor;
  const model = [cpu.manufacturer, cpu.brand].filter(Boolean).join(' ');
  const osName = [os.distro, os.release].filter(Boolean).join(' ');
  return {
    source: 'systeminformation',
    // Without flags the TEE facts would read false: the rooted /proc/cpuinfo answers instead.
    ...((vendorName || model) && cpu.flags ? { cpu: cpuFacts(vendorName, model, cpu.flags) } : {}),
    ...(os.kernel ? { kernel: os.kernel } : {}),
    ...(osName ? { os: osName } : {}),
  };
}

/**
 * The host's facts: through systeminformation when the host root is this machine's own `/` (not a
 * simulated node), from the root's files otherwise and for whatever systeminformation left empty.
 */
export async function readHostFacts(sysfs: HostRoot, api?: SystemInformation): Promise<HostFacts> {
  if (sysfs.root !== '/' || sysfs.simulated) return rootedHostFacts(sysfs);
  const si: SystemInformation = api ?? (await import('systeminformation')).default;
  const [cpu, os] = await Promise.all([si.cpu(), si.osInfo()]);
  const facts = factsFromSystemInformation(cpu, os);
  if (facts.cpu && facts.kernel && facts.os) return { ...facts, kernel: facts.kernel };
  return { ...rootedHostFacts(sysfs), ...facts };
}
