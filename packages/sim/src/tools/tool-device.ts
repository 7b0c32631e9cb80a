import type { NvidiaKind } from './chips.js';

/** One PCI function as the fake tools see it, read from the node's tree (plain data, for pure formatting). */
export interface ToolDevice {
  address: string;
  vendor: number;
  device: number;
  classCode: number;
  kind: NvidiaKind;
  /** The name gpu-admin-tools prints (`H100-SXM`, `NVSwitch_gen3`, `?`). */
  name: string;
  bar0: number;
  /** Driver bound now (basename of the `driver` link). */
  driver?: string;
  powerState: string;
  powerControl: string;
  /** Upstream bridges, root port first. */
  upstream: BridgeInfo[];
}

export interface BridgeInfo {
  address: string;
  vendor: number;
  device: number;
}
