import { CC_MODE_LABEL } from '@gpucc/cc-manager';
import { isGpuccError, messageOf } from '@gpucc/hal';
import { DEFAULT_CDI_DIR } from '@gpucc/kata-manager';
import type { PodAllocation } from './peers.js';
import type { Suite } from './suite.js';

/**
 * The scenario an operator lives through on a CC GPU node, walked by the four operands as processes:
 * vfio-manager binds the GPUs and NVSwitches, kata-manager writes their CDI specs, the device plugin
 * advertises them; `nvidia.com/cc.mode=on` makes cc-manager pause the operands, switch and restore;
 * a pod asking for two GPUs is refused (mode on on Hopper allows one per pod) and a pod asking for one
 * gets it; then `ppcie`, where one pod takes every GPU and NVSwitch, and back to `off`. Every step is checked
 * against the node itself (drivers, CC registers, spec files, the kubelet), never the operands' word.
 *
 * The GPUs are bound before the first switch: gpu-admin-tools cannot change a mode while the nvidia
 * driver holds a GPU, so cc-manager waits for vfio-manager (it refuses devices on a host driver).
 */
export interface ScenarioStep {
  title: string;
  ms: number;
  ok: boolean;
  error?: string;
}

export interface ScenarioResult {
  ok: boolean;
  steps: ScenarioStep[];
}

type StepBody = (suite: Suite) => Promise<string | undefined>;

export const SCENARIO: readonly { title: string; run: StepBody }[] = [
  {
    title: 'vfio-manager binds, kata-manager writes the specs, the device plugin advertises (mode off)',
    run: async (suite) => {
      await suite.converged('off', 'every GPU and NVSwitch on vfio-pci, in a CDI spec and advertised');
      const kubelet = await suite.kubelet();
      const gpus = kubelet.resources['nvidia.com/pgpu'];
      const switches = kubelet.resources['nvidia.com/nvswitch'];
      return `kubelet: nvidia.com/pgpu ${gpus?.allocatable}/${gpus?.capacity}, nvidia.com/nvswitch ${switches?.allocatable}/${switches?.capacity}`;
    },
  },
  {
    title: `label ${CC_MODE_LABEL}=on: cc-manager pauses the operands, switches every GPU, restores them`,
    run: async (suite) => {
      const pluginStarts = suite.history('sandbox-device-plugin').starts;
      await suite.label({ [CC_MODE_LABEL]: 'on' });
      suite.note('suite', `labelled ${CC_MODE_LABEL}=on`);
      await suite.converged('on', 'every GPU in CC mode on, cc.ready.state=true, operands back');
      const restarted = suite.history('sandbox-device-plugin').starts - pluginStarts;
      if (restarted < 1) throw new Error('the device plugin was not paused around the switch');
      return 'the device plugin was paused and came back';
    },
  },
  {
    title: 'mode on, Hopper: a pod asking for 2 GPUs is refused at admission with the rule and the fix',
    run: async (suite) => {
      const message = await refusal(suite.allocate('nvidia.com/pgpu', 2));
      if (!message.includes('ERR_GPUCC_CC_TOPOLOGY_REFUSED') || !message.includes('allows 1 GPU per pod')) {
        throw new Error(`refused, but not for the CC topology: ${message}`);
      }
      suite.note('kubelet', `pod refused: ${message}`);
      const kubelet = await suite.kubelet();
      if (kubelet.allocations.length > 0) throw new Error('the refused pod holds devices');
      return 'refused; nothing allocated';
    },
  },
  {
    title: 'mode on, Hopper: a pod asks for 1 GPU and gets it through the device plugin',
    run: async (suite) => {
      const allocation = await suite.allocate('nvidia.com/pgpu', 1);
      const detail = await checkHandedOver(suite, allocation, 'nvidia.com/pgpu');
      await suite.release('nvidia.com/pgpu'); // the pod ends before the node changes mode
      return detail;
    },
  },
  {
    title: `label ${CC_MODE_LABEL}=ppcie: protected PCIe on every GPU and NVSwitch`,
    run: async (suite) => {
      await suite.label({ [CC_MODE_LABEL]: 'ppcie' });
      suite.note('suite', `labelled ${CC_MODE_LABEL}=ppcie`);
      await suite.converged('ppcie', 'every GPU and NVSwitch in PPCIe mode, cc.ready.state=true');
      return undefined;
    },
  },
  {
    title: 'mode ppcie, Hopper: one pod takes the whole node, 8 GPUs and 4 NVSwitches',
    run: async (suite) => {
      const gpus = await suite.allocate('nvidia.com/pgpu', 8);
      const switches = await suite.allocate('nvidia.com/nvswitch', 4);
      const detail = [
        await checkHandedOver(suite, gpus, 'nvidia.com/pgpu'),
        await checkHandedOver(suite, switches, 'nvidia.com/nvswitch'),
      ];
      await suite.release('nvidia.com/pgpu');
      await suite.release('nvidia.com/nvswitch');
      return detail.join('; ');
    },
  },
  {
    title: `label ${CC_MODE_LABEL}=off: back to no CC (PPCIe turned off first)`,
    run: async (suite) => {
      await suite.label({ [CC_MODE_LABEL]: 'off' });
      suite.note('suite', `labelled ${CC_MODE_LABEL}=off`);
      await suite.converged('off', 'every device off, cc.ready.state=false');
      return undefined;
    },
  },
];

/** The message of an allocation the kubelet refused; throws when it was not refused. */
async function refusal(allocation: Promise<PodAllocation>): Promise<string> {
  try {
    const got = await allocation;
    throw new Error(`allocated ${got.deviceIds.join(', ')} where the rule refuses the set`);
  } catch (error) {
    if (isGpuccError(error) && error.code === 'ERR_GPUCC_SIM_KUBELET_REFUSED') return error.message;
    throw error;
  }
}

/** Checks that Allocate handed over every device node of the devices' CDI entries, and their CDI names. */
async function checkHandedOver(suite: Suite, allocation: PodAllocation, kind: string): Promise<string> {
  const snapshot = await suite.snapshot();
  const spec = Object.values(snapshot.specs).find((s) => s.kind === kind);
  const nodes = [...allocation.deviceNodes].sort();
  for (const id of allocation.deviceIds) {
    const specNodes = spec?.devices[id];
    if (!specNodes) throw new Error(`device ${id} has no CDI device in ${DEFAULT_CDI_DIR}`);
    for (const node of specNodes)
      if (!nodes.includes(node)) throw new Error(`Allocate did not hand over ${node} of device ${id}`);
  }
  // The real kubelet lists the names in the order of its own sets.
  const cdi = [...allocation.cdiDevices].sort();
  const wanted = allocation.deviceIds.map((id) => `${kind}=${id}`).sort();
  if (cdi.join() !== wanted.join()) throw new Error(`cdi_devices ${cdi.join()} ≠ ${wanted.join()}`);
  return `${kind} ${allocation.deviceIds.join(', ')} → ${nodes.join(' ')}; CDI ${cdi.join(' ')}`;
}

/** Runs the steps in order, stopping at the first failure (later steps depend on it). */
export async function runScenario(suite: Suite, steps = SCENARIO): Promise<ScenarioResult> {
  const results: ScenarioStep[] = [];
  for (const step of steps) {
    suite.note('step', step.title);
    const started = Date.now();
    try {
      const detail = await step.run(suite);
      if (detail) suite.note('step', detail);
      results.push({ title: step.title, ms: Date.now() - started, ok: true });
    } catch (error) {
      suite.note('step', `FAILED: ${messageOf(error)}`);
      results.push({ title: step.title, ms: Date.now() - started, ok: false, error: messageOf(error) });
      return { ok: false, steps: results };
    }
  }
  return { ok: true, steps: results };
}

/** The scenario's summary: one line per step with its time. */
export function formatScenario(result: ScenarioResult): string {
  const lines = result.steps.map(
    (s) =>
      `  ${s.ok ? 'ok  ' : 'FAIL'} ${(s.ms / 1000).toFixed(2).padStart(6)} s  ${s.title}${s.error ? `\n         ${s.error}` : ''}`,
  );
  return lines.join('\n');
}
