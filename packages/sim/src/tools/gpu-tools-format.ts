import type { BridgeInfo, ToolDevice } from './tool-device.js';

/**
 * The text gpu-admin-tools (v2025.10.20) prints around its log lines: the device string, the `Topo:`
 * tree and the device listing. Pure: data in, text out. Formats from
 * docs/facts/cc-tools.md#gpu-admin-tools-output.
 */

export const GPU_TOOLS_VERSION = 'v2025.10.20';
export const GPU_TOOLS_PROG = 'nvidia_gpu_tools.py';

const hex4 = (v: number) => v.toString(16).padStart(4, '0');
const INTEL = 0x8086;

/** `GPU <bdf> <name> 0x<id> BAR0 0x<bar0>` or `NvSwitch …`; before init the name is `?` and BAR0 `0x0`. */
export function deviceString(d: ToolDevice, initialised = true): string {
  if (d.kind === 'other') return `PCI ${d.address} ${hex4(d.device)}:${hex4(d.vendor)}`;
  const prefix = d.kind === 'nvswitch' ? 'NvSwitch' : 'GPU';
  const name = initialised ? d.name : '?';
  const bar0 = initialised ? d.bar0 : 0;
  return `${prefix} ${d.address} ${name} 0x${d.device.toString(16)} BAR0 0x${bar0.toString(16)}`;
}

function bridgeString(b: BridgeInfo, isRoot: boolean): string {
  if (isRoot && b.vendor === INTEL) return `Intel root port ${b.address}`;
  return `PciBridge ${b.address} ${hex4(b.device)}:${hex4(b.vendor)}`;
}

interface TopoNode {
  label: string;
  children: Map<string, TopoNode>;
}

/**
 * `Topo:` and the tree of the selected devices with their upstream bridges, one space more per level
 * (Python's `print(" " * indent, node)` starting at indent 1).
 */
export function topoLines(devices: readonly ToolDevice[]): string[] {
  const roots = new Map<string, TopoNode>();
  for (const d of devices) {
    let level = roots;
    d.upstream.forEach((b, i) => {
      let node = level.get(b.address);
      if (!node) {
        node = { label: bridgeString(b, i === 0), children: new Map() };
        level.set(b.address, node);
      }
      level = node.children;
    });
    level.set(d.address, { label: deviceString(d), children: new Map() });
  }
  const lines = ['Topo:'];
  const walk = (level: Map<string, TopoNode>, indent: number) => {
    for (const key of [...level.keys()].sort()) {
      const node = level.get(key)!;
      lines.push(`${' '.repeat(indent)} ${node.label}`);
      walk(node.children, indent + 1);
    }
  };
  walk(roots, 1);
  return lines;
}

/** What the tool prints when no device was selected by BDF, name or spec. */
export function listingLines(gpus: readonly ToolDevice[], other: readonly ToolDevice[]): string[] {
  return [
    'GPUs:',
    ...gpus.map((g, i) => `  ${i} ${deviceString(g)}`),
    'Other:',
    ...other.map((o, i) => `  ${i} ${deviceString(o)}`),
  ];
}

export const GPU_TOOLS_USAGE = `usage: ${GPU_TOOLS_PROG} [-h] [--devices DEVICES] [--gpu GPU] [--gpu-bdf GPU_BDF]
                           [--gpu-name GPU_NAME] [--log {debug,info,warning,error,critical}]
                           [--reset-with-os] [--query-cc-mode]
                           [--set-cc-mode {off,on,devtools}]
                           [--reset-after-cc-mode-switch] [--query-ppcie-mode]
                           [--query-ppcie-settings] [--set-ppcie-mode {off,on}]
                           [--reset-after-ppcie-mode-switch]
                           [--ignore-nvidia-driver]`;

export const GPU_TOOLS_HELP = `${GPU_TOOLS_USAGE}

options:
  -h, --help            show this help message and exit
  --devices DEVICES     Generic device selector supporting multiple comma-separated specifiers:
                        - 'gpus' - Find all NVIDIA GPUs
                        - 'gpus[n]' - Find nth NVIDIA GPU
                        - 'gpus[n:m]' - Find NVIDIA GPUs from index n to m
                        - 'nvswitches' - Find all NVIDIA NVSwitches
                        - 'nvswitches[n]' - Find nth NVIDIA NVSwitch
                        - 'vendor:device' - Find devices matching 4-digit hex vendor:device ID
                        - 'domain:bus:device.function' - Find device at specific BDF address
  --gpu GPU
  --gpu-bdf GPU_BDF     Select a single GPU by providing a substring of the BDF, e.g. '01:00'.
  --gpu-name GPU_NAME   Select a single GPU by providing a substring of the GPU name, e.g. 'T4'. If
                        multiple GPUs match, the first one will be used.
  --log {debug,info,warning,error,critical}
  --reset-with-os       Reset with OS through /sys/.../reset
  --query-cc-mode       Query the current Confidential Computing (CC) mode of the GPU.
  --set-cc-mode {off,on,devtools}
                        Configure Confidentail Computing (CC) mode. The choices are off (disabled), on
                        (enabled) or devtools (enabled in DevTools mode).The GPU needs to be reset to
                        make the selected mode active. See --reset-after-cc-mode-switch for one way of
                        doing it.
  --reset-after-cc-mode-switch
                        Reset the GPU after switching CC mode such that it is activated immediately.
  --query-ppcie-mode    Query the current Protected PCIe (PPCIe) mode of the GPU or switch.
  --query-ppcie-settings
                        Query the Protected PPCIe (PPCIe) settings of the GPU or switch.This prints the
                        lower level setting knobs that will take effect upon GPU or switch reset.
  --set-ppcie-mode {off,on}
                        Configure Protected PCIe (PPCIe) mode. The choices are off (disabled) or on
                        (enabled).The GPU or switch needs to be reset to make the selected mode active.
                        See --reset-after-ppcie-mode-switch for one way of doing it.
  --reset-after-ppcie-mode-switch
                        Reset the GPU or switch after switching PPCIe mode such that it is activated
                        immediately.
  --ignore-nvidia-driver
                        Do not treat nvidia driver apearing to be loaded as an error
`;
