import { CC_MODE_LABEL } from '@gpucc/cc-manager';
import { messageOf } from '@gpucc/hal';
import { DEFAULT_CDI_DIR } from '@gpucc/kata-manager';
import type { Suite } from './suite.js';

/**
 * The scenario an operator lives through on a CC GPU node, walked by the four operands as processes:
 * vfio-manager binds the GPUs and NVSwitches, kata-manager writes their CDI specs, the device plugin
 * advertises them; `nvidia.com/cc.mode=on` makes cc-manager pause the operands, switch and restore;
 * a pod gets two GPUs; then `ppcie` (GPUs and NVSwitches) and back to `off`. Every step is checked
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
      suite.label({ [CC_MODE_LABEL]: 'on' });
      suite.note('suite', `labelled ${CC_MODE_LABEL}=on`);
      await suite.converged('on', 'every GPU in CC mode on, cc.ready.state=true, operands back');
      const restarted = suite.history('sandbox-device-plugin').starts - pluginStarts;
      if (restarted < 1) throw new Error('the device plugin was not paused around the switch');
      return 'the device plugin was paused and came back';
    },
  },
  {
    title: 'a pod asks for 2 GPUs: the kubelet allocates through the device plugin',
    run: async (suite) => {
      const allocation = await suite.allocate('nvidia.com/pgpu', 2);
      const snapshot = await suite.snapshot();
      const spec = Object.values(snapshot.specs).find((s) => s.kind === 'nvidia.com/pgpu');
      const nodes = allocation.response.devices.map((d) => d.host_path).sort();
      for (const id of allocation.deviceIds) {
        const specNodes = spec?.devices[id];
        if (!specNodes) throw new Error(`device ${id} has no CDI device in ${DEFAULT_CDI_DIR}`);
        for (const node of specNodes)
          if (!nodes.includes(node)) throw new Error(`Allocate did not hand over ${node} of device ${id}`);
      }
      const cdi = allocation.response.cdi_devices.map((d) => d.name);
      const wanted = allocation.deviceIds.map((id) => `nvidia.com/pgpu=${id}`);
      if (cdi.join() !== wanted.join()) throw new Error(`cdi_devices ${cdi.join()} ≠ ${wanted.join()}`);
      return `devices ${allocation.deviceIds.join(', ')} → ${nodes.join(' ')}; CDI ${cdi.join(' ')}`;
    },
  },
  {
    title: `label ${CC_MODE_LABEL}=ppcie: protected PCIe on every GPU and NVSwitch`,
    run: async (suite) => {
      suite.label({ [CC_MODE_LABEL]: 'ppcie' });
      suite.note('suite', `labelled ${CC_MODE_LABEL}=ppcie`);
      await suite.converged('ppcie', 'every GPU and NVSwitch in PPCIe mode, cc.ready.state=true');
      return undefined;
    },
  },
  {
    title: `label ${CC_MODE_LABEL}=off: back to no CC (PPCIe turned off first)`,
    run: async (suite) => {
      suite.label({ [CC_MODE_LABEL]: 'off' });
      suite.note('suite', `labelled ${CC_MODE_LABEL}=off`);
      await suite.converged('off', 'every device off, cc.ready.state=false');
      return undefined;
    },
  },
];

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
