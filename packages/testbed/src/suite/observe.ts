import path from 'node:path';
import { CC_MODE_STATE_LABEL, CC_READY_STATE_LABEL, PAUSED } from '@gpucc/cc-manager';
import { discoverPci, isVfioDriver, localFs } from '@gpucc/hal';
import { DEFAULT_CDI_DIR } from '@gpucc/kata-manager';
import { openSimulatedHost, readCcState } from '@gpucc/sim';
import type { KubeletView } from './peers.js';

/**
 * What the whole node looks like from outside the operands: drivers and CC modes of the GPUs and
 * NVSwitches, the CDI specs on disk, the node's labels and what the kubelet was told. The suite's
 * checks ("nothing lost") are computed from this, never from what an operand says about itself.
 */
export interface SuiteSnapshot {
  devices: ObservedDevice[];
  /** CDI spec file name → its devices, each with the device-node paths it names. */
  specs: Record<string, { kind: string; devices: Record<string, string[]> }>;
  labels: Record<string, string>;
  kubelet: KubeletView | undefined;
}

export interface ObservedDevice {
  address: string;
  kind: 'gpu' | 'nvswitch';
  driver: string | undefined;
  iommuGroup: number | undefined;
  cc: string | undefined;
  ppcie: string | undefined;
}

export function observeNode(
  root: string,
  labels: Record<string, string>,
  kubelet: KubeletView | undefined,
): SuiteSnapshot {
  const topology = discoverPci(openSimulatedHost(root));
  const devices: ObservedDevice[] = [];
  for (const d of topology.devices) {
    if (d.kind !== 'gpu' && d.kind !== 'nvswitch') continue;
    const state = readCcState(root, d.address);
    devices.push({
      address: d.address,
      kind: d.kind,
      driver: d.driver,
      iommuGroup: d.iommuGroup,
      cc: state?.cc,
      ppcie: state?.ppcie,
    });
  }
  return { devices, specs: readSpecs(root), labels, kubelet };
}

/**
 * Our specs are written by one renderer in one layout (kata-manager), so a line reader is enough to
 * list each device's nodes: `- name: "23"` opens a device, `- path: /dev/vfio/23` adds a node.
 */
function readSpecs(root: string): SuiteSnapshot['specs'] {
  const dir = path.join(root, DEFAULT_CDI_DIR);
  const specs: SuiteSnapshot['specs'] = {};
  let names: string[] = [];
  try {
    names = localFs.listDir(dir).filter((n) => n.endsWith('.yaml') || n.endsWith('.json'));
  } catch {
    return specs;
  }
  for (const name of names.sort()) {
    let text: string;
    try {
      text = localFs.readText(path.join(dir, name));
    } catch {
      continue; // replaced between the listing and the read
    }
    const kind = /^kind:\s*"?([^"\s]+)"?/m.exec(text)?.[1] ?? '';
    const devices: Record<string, string[]> = {};
    let current: string[] | undefined;
    for (const line of text.split('\n')) {
      const device = /^\s*- name:\s*"?([^"\s]+)"?/.exec(line);
      if (device?.[1] !== undefined) {
        current = [];
        devices[device[1]] = current;
        continue;
      }
      const node = /^\s*- path:\s*"?([^"\s]+)"?/.exec(line);
      if (node?.[1] !== undefined) current?.push(node[1]);
    }
    specs[name] = { kind, devices };
  }
  return specs;
}

/** The CC and PPCIe modes each device must have for a node mode. */
export function expectedModes(mode: string, kind: 'gpu' | 'nvswitch'): { cc?: string; ppcie: string } {
  if (mode === 'ppcie') return kind === 'gpu' ? { cc: 'off', ppcie: 'on' } : { ppcie: 'on' };
  return kind === 'gpu' ? { cc: mode, ppcie: 'off' } : { ppcie: 'off' };
}

const READY_FOR: Record<string, string> = { on: 'true', ppcie: 'true', off: 'false', devtools: 'devtools' };

/**
 * Everything that is wrong with the node for the given CC mode; empty when the suite has converged
 * and nothing was lost: every GPU and NVSwitch on VFIO in the right mode, every VFIO device in a
 * CDI spec whose nodes exist, no spec naming a missing node, the labels true and no operand left
 * paused, and the kubelet offered every GPU as healthy.
 */
export function convergenceProblems(snapshot: SuiteSnapshot, mode: string, root: string): string[] {
  const problems: string[] = [];
  for (const d of snapshot.devices) {
    if (d.driver === undefined) problems.push(`${d.kind} ${d.address} has no driver`);
    else if (!isVfioDriver(d.driver)) problems.push(`${d.kind} ${d.address} is on ${d.driver}, not VFIO`);
    const want = expectedModes(mode, d.kind);
    if (want.cc !== undefined && d.cc !== want.cc)
      problems.push(`${d.kind} ${d.address} CC mode ${d.cc}, not ${want.cc}`);
    if (d.ppcie !== want.ppcie) problems.push(`${d.kind} ${d.address} PPCIe ${d.ppcie}, not ${want.ppcie}`);
  }
  problems.push(...specProblems(snapshot, root));
  const specDevices = new Set(
    Object.values(snapshot.specs).flatMap((s) => Object.keys(s.devices).map((id) => `${s.kind}=${id}`)),
  );
  for (const d of snapshot.devices) {
    const kind = d.kind === 'gpu' ? 'nvidia.com/pgpu' : 'nvidia.com/nvswitch';
    if (d.iommuGroup !== undefined && !specDevices.has(`${kind}=${d.iommuGroup}`))
      problems.push(`no CDI device ${kind}=${d.iommuGroup} for ${d.address}`);
  }
  problems.push(...labelProblems(snapshot.labels, mode));
  const gpus = snapshot.devices.filter((d) => d.kind === 'gpu').length;
  const offered = snapshot.kubelet?.resources['nvidia.com/pgpu'];
  // The real device manager keeps its streams to itself (streaming undefined): its counts say it all.
  if (!offered || offered.streaming === false)
    problems.push('the kubelet has no open ListAndWatch stream for nvidia.com/pgpu');
  else if (offered.allocatable !== gpus)
    problems.push(`the kubelet can allocate ${offered.allocatable} of ${gpus} GPUs`);
  return problems;
}

/** A spec device that names a node that does not exist: a container using it would fail to start. */
export function specProblems(snapshot: SuiteSnapshot, root: string): string[] {
  const problems: string[] = [];
  for (const [file, spec] of Object.entries(snapshot.specs)) {
    for (const [id, nodes] of Object.entries(spec.devices)) {
      for (const node of nodes) {
        if (!localFs.exists(path.join(root, node))) problems.push(`${file}: ${spec.kind}=${id} names missing ${node}`);
      }
    }
  }
  return problems;
}

/** Labels that tell a lie or stay stuck: state ≠ mode, ready not matching, an operand still paused. */
export function labelProblems(labels: Record<string, string>, mode: string): string[] {
  const problems: string[] = [];
  if (labels[CC_MODE_STATE_LABEL] !== mode)
    problems.push(`${CC_MODE_STATE_LABEL}=${labels[CC_MODE_STATE_LABEL]}, not ${mode}`);
  if (labels[CC_READY_STATE_LABEL] !== READY_FOR[mode])
    problems.push(`${CC_READY_STATE_LABEL}=${labels[CC_READY_STATE_LABEL]}, not ${READY_FOR[mode]}`);
  for (const [key, value] of Object.entries(labels)) {
    if (key.startsWith('nvidia.com/gpu.deploy.') && value.endsWith(PAUSED))
      problems.push(`${key}=${value} left paused`);
  }
  return problems;
}
