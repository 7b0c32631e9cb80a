import { initialCcState } from '../node/layout.js';
import type { HostTee } from '../node/spec.js';
import { readCcState, readNodeSpec } from '../node/state.js';
import { isCcCapable, isPpcieCapable } from './chips.js';
import { discoverNvidiaDevices } from './node-devices.js';
import { CONF_COMPUTE_HELP, type ConfComputeCommand, NVIDIA_SMI_HELP, parseNvidiaSmiArgs } from './nvidia-smi-args.js';
import type { ToolIo, ToolOutcome } from './tool-io.js';

/**
 * The fake host `nvidia-smi`: what the real one reports about CC through the NVIDIA driver, so it only
 * answers while GPUs are bound to `nvidia`. It reads modes; it can never set one
 * (docs/facts/cc-tools.md#nvidia-smi-conf-compute).
 */

export const DRIVER_NOT_LOADED =
  "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.";

/** nvidia-smi's documented return codes. */
const EXIT = { ok: 0, invalidArgs: 2, notFound: 6, driverNotLoaded: 9 } as const;

export interface SmiGpu {
  index: number;
  address: string;
  ccCapable: boolean;
  ppcieCapable: boolean;
  /** Current modes (the pending ones do not show until a reset). */
  cc: string;
  ppcie: 'on' | 'off';
}

export interface SmiView {
  tee: HostTee;
  driverVersion: string;
  /** GPUs bound to the nvidia driver, in PCI order (nvidia-smi's enumeration). */
  gpus: SmiGpu[];
}

const CPU_CAPS: Readonly<Record<HostTee, string>> = { 'sev-snp': 'AMD SEV-SNP', tdx: 'INTEL TDX', none: 'None' };

/** The derived facts every conf-compute query reports. */
export function confComputeFacts(view: SmiView) {
  const cc = view.gpus.filter((g) => g.ccCapable);
  const ppcie = view.gpus.filter((g) => g.ppcieCapable);
  return {
    ccOn: cc.length > 0 && cc.every((g) => g.cc === 'on' || g.cc === 'devtools'),
    devtools: cc.length > 0 && cc.every((g) => g.cc === 'devtools'),
    protectedPcie: ppcie.length > 0 && ppcie.every((g) => g.ppcie === 'on'),
    cpuCaps: CPU_CAPS[view.tee],
    gpuCaps: cc.length > 0 ? 'CC Capable' : 'CC Not Capable',
  };
}

/** Output lines of one conf-compute command (format strings from the 550/580 drivers). */
export function renderConfCompute(command: ConfComputeCommand, view: SmiView): string[] {
  const f = confComputeFacts(view);
  const onOff = (on: boolean) => (on ? 'ON' : 'OFF');
  const multiGpu = f.protectedPcie ? 'Protected PCIe' : 'None';
  switch (command) {
    case 'f':
      return [`CC status: ${onOff(f.ccOn)}`];
    case 'd':
      return [`DevTools Mode: ${onOff(f.devtools)}`];
    case 'e':
      return ['CC Environment: PRODUCTION'];
    case 'grs':
      // The ready state is set inside the confidential VM; the host never sees it set.
      return ['Confidential Compute GPUs Ready state: not-ready'];
    case 'mgm':
      return [`Multi-GPU Mode: ${multiGpu}`];
    case 'gc':
      return [`CPU CC capabilities: ${f.cpuCaps}`];
    case 'gg':
      return [`GPU CC capabilities: ${f.gpuCaps}`];
    case 'q': {
      const row = (label: string, value: string) => `    ${label.padEnd(27)}: ${value}`;
      return [
        '==============NVSMI CONF-COMPUTE LOG==============',
        row('CC State', onOff(f.ccOn)),
        row('Multi-GPU Mode', multiGpu),
        row('CPU CC Capabilities', f.cpuCaps),
        row('GPU CC Capabilities', f.gpuCaps),
        row('CC GPUs Ready State', 'Not Ready'),
      ];
    }
  }
}

const QUERY_FIELDS: Readonly<Record<string, (gpu: SmiGpu, view: SmiView) => string>> = {
  driver_version: (_g, v) => v.driverVersion,
  'pci.bus_id': (g) => busId(g.address),
  index: (g) => String(g.index),
  count: (_g, v) => String(v.gpus.length),
};

/** `--query-gpu`: one CSV line per GPU; undefined text means an unknown field (the error line instead). */
export function renderQueryGpu(
  fields: readonly string[],
  header: boolean,
  view: SmiView,
): { lines: string[]; error?: string } {
  const unknown = fields.find((f) => !QUERY_FIELDS[f]);
  if (unknown !== undefined) return { lines: [], error: `Field "${unknown}" is not a valid field to query.` };
  const rows = view.gpus.map((g) => fields.map((f) => QUERY_FIELDS[f]!(g, view)).join(', '));
  return { lines: header ? [fields.join(', '), ...rows] : rows };
}

/** nvidia-smi's PCI bus ID: 8-digit domain, upper-case hex. */
export function busId(address: string): string {
  return `0000${address}`.toUpperCase();
}

function selectGpus(gpus: readonly SmiGpu[], ids: readonly string[] | undefined): SmiGpu[] | undefined {
  if (!ids) return [...gpus];
  const chosen: SmiGpu[] = [];
  for (const id of ids) {
    const lower = id.trim().toLowerCase();
    const gpu = /^\d+$/.test(lower)
      ? gpus.find((g) => g.index === Number(lower))
      : gpus.find((g) => busId(g.address).toLowerCase().endsWith(lower));
    if (!gpu) return undefined;
    if (!chosen.includes(gpu)) chosen.push(gpu);
  }
  return chosen;
}

/** Reads the node into what nvidia-smi would see through the driver. */
export function readSmiView(root: string): SmiView {
  const node = readNodeSpec(root);
  const bound = discoverNvidiaDevices(root, node).filter((d) => d.kind === 'gpu' && d.driver === 'nvidia');
  return {
    tee: node.tee,
    driverVersion: node.nvidiaDriverVersion ?? 'N/A',
    gpus: bound.map((d, index) => {
      const state = readCcState(root, d.address) ?? initialCcState();
      return {
        index,
        address: d.address,
        ccCapable: isCcCapable(d.kind, d.device),
        ppcieCapable: isPpcieCapable(d.kind, d.device),
        cc: state.cc,
        ppcie: state.ppcie,
      };
    }),
  };
}

export async function runNvidiaSmi(root: string, args: readonly string[], io: ToolIo): Promise<ToolOutcome> {
  const print = (lines: readonly string[]) => io.stdout(lines.map((l) => `${l}\n`).join(''));
  const parsed = parseNvidiaSmiArgs(args);
  switch (parsed.kind) {
    case 'help':
      io.stdout(NVIDIA_SMI_HELP);
      return EXIT.ok;
    case 'conf-compute-help':
      io.stdout(CONF_COMPUTE_HELP);
      return EXIT.ok;
    case 'usage-error':
      print([parsed.message]);
      return EXIT.invalidArgs;
  }
  const view = readSmiView(root);
  if (view.gpus.length === 0) {
    print([DRIVER_NOT_LOADED]);
    return EXIT.driverNotLoaded;
  }
  const gpus = selectGpus(view.gpus, parsed.ids);
  if (!gpus || gpus.length === 0) {
    print(['No devices were found']);
    return EXIT.notFound;
  }
  const selected = { ...view, gpus };
  if (parsed.kind === 'conf-compute') {
    print(renderConfCompute(parsed.command, selected));
    return EXIT.ok;
  }
  const result = renderQueryGpu(parsed.fields, parsed.header, selected);
  if (result.error) {
    print([result.error]);
    return EXIT.invalidArgs;
  }
  print(result.lines);
  return EXIT.ok;
}
