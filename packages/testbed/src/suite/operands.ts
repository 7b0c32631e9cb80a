import path from 'node:path';
import { pathToFileURL } from 'node:url';

/**
 * The four gpucc operands as the suite runs them on a simulated node: each in its `run` mode, as a
 * DaemonSet would, selected by its `nvidia.com/gpu.deploy.<operand>` label (deploy/kubernetes).
 */
export const OPERANDS = ['cc-manager', 'vfio-manager', 'kata-manager', 'sandbox-device-plugin'] as const;
export type Operand = (typeof OPERANDS)[number];

/** The node-selector label of an operand's DaemonSet: it runs while the value is exactly "true". */
export function deployLabel(operand: Operand): string {
  return `nvidia.com/gpu.deploy.${operand}`;
}

export interface OperandContext {
  root: string;
  nodeName: string;
  metricsPort: number;
  /** The API server peer's kubeconfig (cc-manager reads the node's labels there). */
  kubeconfig: string;
}

/** The command line of one operand's `run` mode against the simulated node (JSON logs, own port). */
export function operandArgs(operand: Operand, ctx: OperandContext): string[] {
  const common = [
    'run',
    '--host-root',
    ctx.root,
    '--log-format',
    'json',
    '--metrics-address',
    `127.0.0.1:${ctx.metricsPort}`,
  ];
  switch (operand) {
    case 'cc-manager':
      return [
        ...common,
        '--node-name',
        ctx.nodeName,
        '--kubeconfig',
        ctx.kubeconfig,
        // The suite's DaemonSet controller stops a paused device plugin within a second.
        '--operand-wait',
        '30000',
      ];
    case 'vfio-manager':
      // NVSwitches too, by default: `ppcie` switches them, and they must be on VFIO for that.
      return [...common, '--resync-interval', '5000'];
    case 'kata-manager':
      return common;
    case 'sandbox-device-plugin':
      return [...common, '--cdi-devices', '--resync-interval', '2000'];
  }
}

/** The repository's bin scripts (they load the bundles of `pnpm run build`, and attach the simulator). */
export function repositoryBinaries(): Record<Operand | 'gpucc-sim', string> {
  // This file is packages/testbed/{src,dist}/suite/operands.*: three levels below packages/.
  const bin = (pkg: string, name: string) => path.resolve(import.meta.dirname, '../../..', pkg, 'bin', `${name}.mjs`);
  return {
    'gpucc-sim': bin('sim', 'gpucc-sim'),
    'cc-manager': bin('cc-manager', 'cc-manager'),
    'vfio-manager': bin('vfio-manager', 'vfio-manager'),
    'kata-manager': bin('kata-manager', 'kata-manager'),
    'sandbox-device-plugin': bin('sandbox-device-plugin', 'sandbox-device-plugin'),
  };
}

/**
 * What `node --import` takes to attach the simulator to a deployed bundle run from the repository
 * (the bin scripts import the same file): a bundle alone refuses a simulated node.
 */
export const ATTACH_SIMULATOR = pathToFileURL(path.resolve(import.meta.dirname, '../../../sim/bin/attach.mjs')).href;
