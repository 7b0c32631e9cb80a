import path from 'node:path';
import { isPciAddress } from '@gpucc/hal';
import { Tree } from '../node/files.js';
import { PCI_DEVICES } from '../node/paths.js';
import type { NodeSpec } from '../node/spec.js';
import { NVIDIA } from '../node/spec.js';
import { defaultName, nvidiaKind } from './chips.js';
import type { BridgeInfo, ToolDevice } from './tool-device.js';

/**
 * The NVIDIA functions of a node as the real tools find them: by scanning `sys/bus/pci/devices`
 * (a removed device is gone), reading IDs, BAR0 (`resource`), driver link, power state and the
 * upstream bridges from the tree. node.json only adds the printed name.
 */

export function discoverNvidiaDevices(root: string, node: NodeSpec): ToolDevice[] {
  const tree = new Tree(root, { replaceFiles: true });
  const devices: ToolDevice[] = [];
  for (const address of tree.list(PCI_DEVICES).sort()) {
    const dir = tree.readLink(`${PCI_DEVICES}/${address}`);
    if (dir === undefined || !tree.exists(`${dir}/vendor`)) continue;
    const vendor = readHex(tree, `${dir}/vendor`);
    if (vendor !== NVIDIA) continue;
    const device = readHex(tree, `${dir}/device`);
    const classCode = readHex(tree, `${dir}/class`);
    const kind = nvidiaKind(vendor, classCode);
    const spec = node.devices.find((d) => d.address === address);
    const driver = tree.readLink(`${dir}/driver`);
    devices.push({
      address,
      vendor,
      device,
      classCode,
      kind,
      name: spec?.ccName ?? defaultName(kind, device),
      bar0: readBar0(tree, dir) ?? spec?.bar0 ?? 0,
      ...(driver === undefined ? {} : { driver: path.basename(driver) }),
      powerState: readOr(tree, `${dir}/power_state`, 'D0'),
      powerControl: readOr(tree, `${dir}/power/control`, 'on'),
      upstream: upstreamBridges(tree, dir),
    });
  }
  return devices;
}

/** Bridges above a device, root port first, from its path under sys/devices. */
function upstreamBridges(tree: Tree, dir: string): BridgeInfo[] {
  const parts = dir.split('/');
  const bridges: BridgeInfo[] = [];
  for (let i = 0; i < parts.length - 1; i++) {
    const address = parts[i]!;
    if (!isPciAddress(address)) continue;
    const bridgeDir = parts.slice(0, i + 1).join('/');
    bridges.push({
      address,
      vendor: readHexOr(tree, `${bridgeDir}/vendor`, 0xffff),
      device: readHexOr(tree, `${bridgeDir}/device`, 0xffff),
    });
  }
  return bridges;
}

/** BAR0 start from the first line of `resource` (`0x<start> 0x<end> 0x<flags>`); undefined when unset. */
export function parseBar0(resource: string): number | undefined {
  const first = resource.split('\n')[0]?.trim().split(/\s+/)[0];
  if (!first) return undefined;
  const start = Number(first);
  return Number.isFinite(start) && start > 0 ? start : undefined;
}

function readBar0(tree: Tree, dir: string): number | undefined {
  return tree.exists(`${dir}/resource`) ? parseBar0(tree.read(`${dir}/resource`)) : undefined;
}

function readHex(tree: Tree, rel: string): number {
  return Number.parseInt(tree.read(rel).trim(), 16);
}

function readHexOr(tree: Tree, rel: string, fallback: number): number {
  return tree.exists(rel) ? readHex(tree, rel) : fallback;
}

function readOr(tree: Tree, rel: string, fallback: string): string {
  return tree.exists(rel) ? tree.read(rel).trim() : fallback;
}
