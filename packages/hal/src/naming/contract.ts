/**
 * THE naming contract (docs/facts/kubelet-device-plugin.md#resource-names,
 * docs/facts/cdi.md#names, docs/facts/cdi.md#the-kata-naming-contract). Kata builds the CDI name
 * `<resource name>=<device ID>` from what the kubelet tells it, so:
 *   device-plugin resource name == CDI kind   (nvidia.com/pgpu, nvidia.com/nvswitch, nvidia.com/GH100_H100_PCIE)
 *   device-plugin device ID     == CDI device name (IOMMU group number, or N of /dev/vfio/devices/vfioN)
 * The device plugin and kata-manager both call these functions and nothing else.
 */

import { checkDeviceNumber, type VfioModel } from '../devnodes/index.js';
import { GpuccError, isGpuccError } from '../errors/index.js';
import { parseCdiName } from '../types/index.js';
import { lookupNvidiaDeviceName, type PciIdsDb } from './pci-ids.js';

export type NamedDeviceType = 'gpu' | 'nvswitch';

export interface NameAliases {
  /** P_GPU_ALIAS: unset -> `pgpu`; `""` -> per-model names from pci.ids; else the alias itself. */
  gpuAlias?: string | undefined;
  /** NVSWITCH_ALIAS: unset -> `nvswitch`; `""` -> per-model names; else the alias itself. */
  nvswitchAlias?: string | undefined;
}

export interface ResourceNameInput {
  deviceType: NamedDeviceType;
  /** PCI device id (the `device` attribute), e.g. 0x2331. */
  pciDeviceId: number;
  pciIds?: PciIdsDb | undefined;
  aliases?: NameAliases | undefined;
}

export interface ResourceNaming {
  /** Kubernetes extended resource, e.g. `nvidia.com/pgpu`. */
  resourceName: string;
  cdiVendor: string;
  cdiClass: string;
  /** CDI kind `vendor/class`; always equal to `resourceName`. */
  cdiKind: string;
}

export const RESOURCE_NAMESPACE = 'nvidia.com';
export const CDI_VENDOR = 'nvidia.com';
export const DEFAULT_ALIASES = { gpu: 'pgpu', nvswitch: 'nvswitch' } as const satisfies Record<NamedDeviceType, string>;

// The name part of a Kubernetes extended resource (apimachinery IsQualifiedName).
const K8S_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const MAX_CLASS = 63;

/** Resource name and CDI kind for one device; the same inputs give the same name in every operand. */
export function resourceNamingFor(input: ResourceNameInput): ResourceNaming {
  const alias = input.deviceType === 'gpu' ? input.aliases?.gpuAlias : input.aliases?.nvswitchAlias;
  const cdiClass = validateResourceClass(
    alias === undefined ? DEFAULT_ALIASES[input.deviceType] : alias === '' ? perModelClass(input) : alias,
  );
  const kind = `${CDI_VENDOR}/${cdiClass}`;
  return { resourceName: `${RESOURCE_NAMESPACE}/${cdiClass}`, cdiVendor: CDI_VENDOR, cdiClass, cdiKind: kind };
}

/**
 * The per-model class: the pci.ids name formatted as upstream does. A device missing from pci.ids
 * (or a host without pci.ids) gets `NVIDIA_<DEVICE ID>`, e.g. `NVIDIA_2330`. Not upstream's
 * `UNKNOWN_DEVICE`, which would merge every unknown model into one resource, and not the bare hex id
 * of the KubeVirt plugin (`2330`), which is a valid resource name but an invalid CDI class.
 */
function perModelClass(input: ResourceNameInput): string {
  const id = checkPciDeviceId(input.pciDeviceId);
  const name = lookupNvidiaDeviceName(input.pciIds, id);
  return name === undefined ? fallbackClass(id) : formatPciIdsName(name);
}

export function fallbackClass(pciDeviceId: number): string {
  return `NVIDIA_${checkPciDeviceId(pciDeviceId).toString(16).toUpperCase().padStart(4, '0')}`;
}

/**
 * Upstream's formatting of a pci.ids model name: upper-case; `/` and `.` become `_`; each run of
 * whitespace becomes `_`; everything outside [A-Za-z0-9_-] is dropped.
 * `GH100 [H100 PCIe]` -> `GH100_H100_PCIE`, `GK104.GL [GRID/K520]` -> `GK104_GL_GRID_K520`.
 */
export function formatPciIdsName(name: string): string {
  return name
    .trim()
    .toUpperCase()
    .replace(/[/.]/g, '_')
    .replace(/\s+/g, '_')
    .replace(/[^A-Za-z0-9_-]/g, '');
}

/**
 * Checks a class against both rules it must satisfy: the CDI class rule and the Kubernetes
 * resource-name rule. Their intersection: letter first, alphanumeric last, [A-Za-z0-9_-] inside,
 * at most 63 characters, and no `.` (which would need CDI 0.6.0).
 */
export function validateResourceClass(cdiClass: string): string {
  const problem = classProblem(cdiClass);
  if (problem === undefined) return cdiClass;
  throw new GpuccError(
    'ERR_GPUCC_INVALID_RESOURCE_NAME',
    `invalid resource name ${JSON.stringify(`${RESOURCE_NAMESPACE}/${cdiClass}`)}: ${problem.text}`,
    {
      hint: 'set P_GPU_ALIAS / NVSWITCH_ALIAS to a name that starts with a letter, ends with a letter or digit, has only letters, digits, _ and - and at most 63 characters',
      ...(problem.cause === undefined ? {} : { cause: problem.cause }),
      details: { cdiClass },
    },
  );
}

function classProblem(cdiClass: string): { text: string; cause?: unknown } | undefined {
  try {
    parseCdiName('class', cdiClass);
  } catch (error) {
    if (!isGpuccError(error)) throw error;
    return { text: 'not a valid CDI class', cause: error };
  }
  if (cdiClass.length > MAX_CLASS) return { text: `longer than ${MAX_CLASS} characters` };
  if (!K8S_NAME.test(cdiClass)) return { text: 'not a valid Kubernetes resource name' };
  if (cdiClass.includes('.')) return { text: 'a `.` in a CDI class needs cdiVersion 0.6.0' };
  return undefined;
}

function checkPciDeviceId(id: number): number {
  if (Number.isInteger(id) && id >= 0 && id <= 0xffff) return id;
  throw new GpuccError('ERR_GPUCC_INVALID_RESOURCE_NAME', `invalid PCI device id ${id}`, {
    hint: 'a PCI device id is a 16-bit number read from the device attribute, e.g. 0x2331',
    details: { pciDeviceId: id },
  });
}

// ---- device IDs -----------------------------------------------------------------------------------

export interface DeviceIdInput {
  mode: VfioModel;
  /** IOMMU group number (legacy and no-IOMMU modes). */
  iommuGroup?: number | undefined;
  /** N of /dev/vfio/devices/vfioN (iommufd mode). */
  vfioCdevIndex?: number | undefined;
}

/** The device-plugin device ID, which is also the CDI device name: a group number or a cdev N. */
export function deviceIdFor(input: DeviceIdInput): string {
  const [value, what] =
    input.mode === 'iommufd' ? [input.vfioCdevIndex, 'vfio cdev number'] : [input.iommuGroup, 'IOMMU group number'];
  const number = checkDeviceNumber(value, what, input.mode);
  return parseCdiName('device', String(number));
}

/** Numeric order of device IDs ("8" before "10"); non-numeric IDs sort after, as strings. */
export function compareDeviceIds(a: string, b: string): number {
  const numeric = /^\d+$/;
  const an = numeric.test(a);
  const bn = numeric.test(b);
  if (an && bn) {
    const diff = Number(a) - Number(b);
    if (diff !== 0) return diff < 0 ? -1 : 1;
    return a < b ? -1 : a > b ? 1 : 0; // "08" vs "8": stable, deterministic
  }
  if (an !== bn) return an ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---- device-plugin sockets ------------------------------------------------------------------------

/** The sandbox device plugin's sockets start with this, in the kubelet's device-plugin directory. */
export const PLUGIN_SOCKET_PREFIX = 'sandbox-';

/**
 * The plugin's socket for a resource: `nvidia.com/pgpu` → `sandbox-pgpu.sock`, as NVIDIA's plugin
 * names it. Safe as a file name: the class part is validated to [A-Za-z0-9_-] by `validateResourceClass`.
 */
export function socketNameFor(resourceName: string): string {
  return `${PLUGIN_SOCKET_PREFIX}${resourceName.slice(resourceName.indexOf('/') + 1)}.sock`;
}
