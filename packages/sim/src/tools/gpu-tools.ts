import path from 'node:path';
import { errnoOf, type HostRoot, localFs } from '@gpucc/hal';
import { initialCcState } from '../node/layout.js';
import { HELD_ACCESS_LOG, PCI_DEVICES } from '../node/paths.js';
import type { CcState } from '../node/spec.js';
import {
  type Fault,
  readCcState,
  readFaults,
  readNodeSpec,
  readToolSettings,
  type ToolSettings,
  withNodeLock,
  writeCcState,
} from '../node/state.js';
import { isCcCapable, isPpcieCapable } from './chips.js';
import { type GpuToolsOptions, parseGpuToolsArgs } from './gpu-tools-args.js';
import {
  deviceString,
  GPU_TOOLS_HELP,
  GPU_TOOLS_PROG,
  GPU_TOOLS_USAGE,
  GPU_TOOLS_VERSION,
  topoLines,
} from './gpu-tools-format.js';
import { selectDevices } from './gpu-tools-select.js';
import { discoverNvidiaDevices } from './node-devices.js';
import {
  type LogLevel,
  logLine,
  type PythonFrame,
  pythonListRepr,
  pythonOsError,
  pythonTraceback,
} from './python-format.js';
import type { ToolDevice } from './tool-device.js';
import { type FirmwareSupport, firmwareOf, takeToolFault } from './tool-faults.js';
import { defaultToolDeps, type ToolDeps, type ToolIo, type ToolOutcome } from './tool-io.js';

/**
 * The fake `nvidia_gpu_tools.py` (gpu-admin-tools v2025.10.20) on a simulated node. It follows the
 * real tool's phases: header, selection, `Topo:`, `Selected` lines, then per device the OS reset
 * (`--reset-with-os`), the GPU phase (driver check, CC set / reset / verify, CC query) and the
 * GPU-or-NVSwitch phase (PPCIe set / reset / verify, PPCIe query). Prints go to stdout and log lines
 * to stderr, as Python's print and logging do. A mode becomes current only through a write of `1` to
 * the device's `reset`, handled by the kernel simulator.
 *
 * Firmware (`fw-no-cc`, `fw-no-ppcie` faults): a GPU whose firmware has no CC is treated as the real
 * tool treats a GPU without CC (`Querying CC mode is not supported on …` / `Configuring CC not
 * supported on …` at ERROR, exit 1; v2025.10.20 decides that by architecture, so on hardware these
 * lines mean the tool does not take the GPU as CC-capable). Old PPCIe firmware fails where the real
 * tool reaches the FSP's PPCIe knob, setting it or reading `--query-ppcie-settings`: `… does not
 * support PPCIe on current FW. A FW update is required.` at ERROR, exit 1; `--query-ppcie-mode` reads
 * a register and still answers, as on hardware.
 */

// Frames of the tracebacks the real tool prints; line numbers are nominal.
const WRITE_TIMEOUT_MS = 2 ** 31 - 1; // a hung reset blocks the real tool for good

/**
 * A real tool maps the device's BAR0, which fails or disturbs the guest while a VM has the device
 * open (enable >= 1 on a VFIO driver: docs/facts/real-hosts.md#an-open-vfio-pci-device-has-enable-1).
 * The simulator records each such call, so tests can show cc-manager makes none.
 */
function recordHeldAccess(root: string, addresses: readonly string[], args: readonly string[]): void {
  for (const address of addresses) {
    const dev = path.join(root, PCI_DEVICES, address);
    const driver = localFs.exists(path.join(dev, 'driver'))
      ? path.basename(localFs.realPath(path.join(dev, 'driver')))
      : '';
    let enable = '0';
    try {
      enable = localFs.readText(path.join(dev, 'enable')).trim();
    } catch {}
    if (!/vfio/.test(driver) || Number(enable) < 1) continue;
    localFs.appendText(
      path.join(root, HELD_ACCESS_LOG),
      `${JSON.stringify({ t: Date.now(), pid: process.pid, device: address, args })}\n`,
    );
  }
}

class PythonException extends Error {
  constructor(
    readonly frames: PythonFrame[],
    readonly exception: string,
  ) {
    super(exception);
  }
}

/** Runs one call of the fake tool. `scriptPath` is argv[0] as Python would see it. */
export async function runGpuTools(
  root: string,
  scriptPath: string,
  args: readonly string[],
  io: ToolIo,
  deps: Partial<ToolDeps> = {},
): Promise<ToolOutcome> {
  return new GpuToolsRun(root, scriptPath, io, defaultToolDeps(deps)).run(args);
}

class GpuToolsRun {
  private readonly toolDir: string;
  private settings!: ToolSettings;
  private options!: GpuToolsOptions;
  private sysfs: HostRoot | undefined;
  private faults: Fault[] | undefined;
  /** Devices whose power control was forced on, restored (with a warning) when the process ends. */
  private readonly forced: ToolDevice[] = [];

  constructor(
    private readonly root: string,
    private readonly scriptPath: string,
    private readonly io: ToolIo,
    private readonly deps: ToolDeps,
  ) {
    this.toolDir = path.dirname(scriptPath);
  }

  async run(args: readonly string[]): Promise<ToolOutcome> {
    this.settings = readToolSettings(this.root);
    await this.deps.sleep(this.settings.startMs); // Python start-up and device init
    this.print(`NVIDIA GPU Tools version ${GPU_TOOLS_VERSION}`);
    this.print(`Command line arguments: ${pythonListRepr([this.scriptPath, ...args])}`);
    const parsed = parseGpuToolsArgs(args);
    if (!parsed.ok) {
      this.io.stderr(`${GPU_TOOLS_USAGE}\n${GPU_TOOLS_PROG}: error: ${parsed.error}\n`);
      return 2;
    }
    this.options = parsed.options;
    if (this.options.help) {
      this.io.stdout(GPU_TOOLS_HELP);
      return 0;
    }

    const all = discoverNvidiaDevices(this.root, readNodeSpec(this.root));
    const selection = selectDevices(all, this.options);
    const outcome = selection.outcome;
    const chosen = outcome.kind === 'selected' ? outcome.devices : [];
    const fault = await takeToolFault(
      this.root,
      chosen.map((d) => d.address),
    );
    recordHeldAccess(
      this.root,
      chosen.map((d) => d.address),
      args,
    );
    for (const d of selection.initialised) this.forcePower(d);
    if (fault?.kind === 'tool-hang') return 'hang'; // stuck for good: no restore line either
    try {
      if (fault) return this.fire(fault.kind, chosen);
      for (const line of selection.listing) this.print(line);
      switch (outcome.kind) {
        case 'error':
          this.log('ERROR', outcome.message);
          return 1;
        case 'nothing':
          this.log('INFO', outcome.message);
          return 0;
        case 'exception':
          throw new PythonException(
            [this.entryFrame(), this.mainFrame(183, 'raise ValueError("GPU index out of bounds")')],
            outcome.exception,
          );
      }
      return (await this.work(outcome.devices)) ? 0 : 1;
    } catch (error) {
      if (!(error instanceof PythonException)) throw error;
      this.io.stderr(pythonTraceback(error.frames, error.exception));
      return 1;
    } finally {
      for (const d of this.forced)
        this.log('WARNING', `${deviceString(d)} restoring power control to ${d.powerControl}`);
    }
  }

  private async work(devices: ToolDevice[]): Promise<boolean> {
    for (const line of topoLines(devices)) this.print(line);
    for (const d of devices) this.log('INFO', `Selected ${deviceString(d)}`);
    for (const d of devices) this.modeWarnings(d);
    for (const d of devices) {
      if (this.options.resetWithOs) await this.reset(d, 'device');
      if (d.kind === 'gpu' && !(await this.perGpu(d))) return false;
      if (d.kind !== 'other' && !(await this.perGpuOrNvswitch(d))) return false;
    }
    return true;
  }

  /** A device not in CC or PPCIe mode `off` gets a warning when it is opened. */
  private modeWarnings(d: ToolDevice): void {
    const state = this.state(d);
    if (isCcCapable(d.kind, d.device) && this.firmware(d).cc && state.cc !== 'off') {
      this.log('WARNING', `${deviceString(d)} has CC mode ${state.cc}, some functionality may not work`);
    }
    if (isPpcieCapable(d.kind, d.device) && state.ppcie !== 'off') {
      this.log('WARNING', `${deviceString(d)} has PPCIe mode ${state.ppcie}, some functionality may not work`);
    }
  }

  private async perGpu(gpu: ToolDevice): Promise<boolean> {
    const o = this.options;
    const name = deviceString(gpu);
    // gpu-admin-tools#13: knob writes fail while the NVIDIA driver owns the GPU, so the tool refuses.
    if ((o.setCcMode || o.setPpcieMode) && gpu.driver === 'nvidia') {
      if (!o.ignoreNvidiaDriver) {
        this.log(
          'ERROR',
          `The nvidia driver appears to be using ${name}, aborting. Specify --ignore-nvidia-driver to ignore this check.`,
        );
        return false;
      }
      this.log(
        'WARNING',
        `The nvidia driver appears to be using ${name}, but --ignore-nvidia-driver was specified, continuing.`,
      );
    }
    const capable = isCcCapable(gpu.kind, gpu.device) && this.firmware(gpu).cc;
    if (o.setCcMode) {
      const mode = o.setCcMode;
      if (!capable) {
        this.log('ERROR', `Configuring CC not supported on ${name}`);
        return false;
      }
      await this.deps.sleep(this.settings.setMs);
      await this.updateState(gpu, (s) => ({ ...s, ccPending: mode }));
      this.log('INFO', `${name} CC mode set to ${mode}. It will be active after GPU reset.`);
      if (o.resetAfterCcModeSwitch) {
        await this.reset(gpu, 'gpu');
        const now = this.state(gpu).cc;
        if (now !== mode) {
          throw new PythonException(
            [
              this.entryFrame(),
              this.mainFrame(412, 'if not main_per_gpu(d, opts):'),
              this.frame(
                'cli/per_gpu.py',
                237,
                'main_per_gpu',
                'raise GpuError(f"{gpu} failed to switch to CC mode {opts.set_cc_mode}, current mode is {new_mode}.")',
              ),
            ],
            `gpu.error.GpuError: ${name} failed to switch to CC mode ${mode}, current mode is ${now}.`,
          );
        }
        this.log('INFO', `${name} was reset to apply the new CC mode.`);
      }
    }
    if (o.queryCcMode) {
      if (!capable) {
        this.log('ERROR', `Querying CC mode is not supported on ${name}`);
        return false;
      }
      this.log('INFO', `${name} CC mode is ${this.state(gpu).cc}`);
    }
    return true;
  }

  private async perGpuOrNvswitch(d: ToolDevice): Promise<boolean> {
    const o = this.options;
    const name = deviceString(d);
    const capable = isPpcieCapable(d.kind, d.device);
    if (o.setPpcieMode) {
      const mode = o.setPpcieMode;
      if (!capable) {
        this.log('ERROR', `Configuring PPCIe not supported on ${name}`);
        return false;
      }
      await this.deps.sleep(this.settings.setMs);
      if (!this.firmware(d).ppcie) {
        this.log('ERROR', `${name} does not support PPCIe on current FW. A FW update is required.`);
        return false;
      }
      // PPCIe on clears the CC knobs: CC reads off in PPCIe mode.
      await this.updateState(d, (s) => ({ ...s, ppciePending: mode, ...(mode === 'on' ? { ccPending: 'off' } : {}) }));
      this.log('INFO', `${name} PPCIe mode set to ${mode}. It will be active after GPU or switch reset.`);
      if (o.resetAfterPpcieModeSwitch) {
        await this.reset(d, 'nvswitch');
        const now = this.state(d).ppcie;
        if (now !== mode) {
          throw new PythonException(
            [
              this.entryFrame(),
              this.mainFrame(415, 'if not main_per_gpu_or_nvswitch(d, opts):'),
              this.frame(
                'cli/per_gpu_nvswitch.py',
                139,
                'main_per_gpu_or_nvswitch',
                'raise GpuError(f"{device} failed to switch to PPCIe mode {opts.set_ppcie_mode}, current mode is {new_mode}.")',
              ),
            ],
            `gpu.error.GpuError: ${name} failed to switch to PPCIe mode ${mode}, current mode is ${now}.`,
          );
        }
        this.log('INFO', `${name} was reset to apply the new PPCIe mode.`);
      }
    }
    if (o.queryPpcieMode) {
      if (!capable) {
        this.log('ERROR', `Querying PPCIe mode is not supported on ${name}`);
        return false;
      }
      this.log('INFO', `${name} PPCIe mode is ${this.state(d).ppcie}`);
    }
    if (o.queryPpcieSettings) {
      if (!capable) {
        this.log('ERROR', `Querying PPCIe settings is not supported on ${name}`);
        return false;
      }
      // The knobs are read through the FSP: old firmware has no PPCIe knob (an invalid-knob error).
      if (!this.firmware(d).ppcie) {
        this.log('ERROR', `${name} does not support PPCIe on current FW. A FW update is required.`);
        return false;
      }
      this.log('INFO', `${name} PPCIe settings:`);
      // The knob holds what the next reset applies; in-band control is never enabled by the fake.
      this.log('INFO', `  enable = ${this.state(d).ppciePending === 'on' ? 1 : 0}`);
      this.log('INFO', '  enable-allow-inband-control = 0');
    }
    return true;
  }

  /** The device's firmware support, from the node's `fw-no-*` faults (read once per call). */
  private firmware(d: ToolDevice): FirmwareSupport {
    this.faults ??= readFaults(this.root);
    return firmwareOf(this.faults, d.address);
  }

  /** `reset_with_os`: one write of `1` to the device's `reset`, through the kernel simulator. */
  private async reset(d: ToolDevice, phase: 'device' | 'gpu' | 'nvswitch'): Promise<void> {
    const rel = `${PCI_DEVICES}/${d.address}/reset`;
    this.sysfs ??= this.deps.openSysfs(this.root);
    try {
      await this.sysfs.write(rel, '1', { timeoutMs: WRITE_TIMEOUT_MS });
    } catch (error) {
      const errno = errnoOf(error);
      if (errno === 'ENOENT') this.log('ERROR', `${deviceString(d)} reset not present: '/${rel}'`);
      const caller =
        phase === 'device'
          ? [
              this.mainFrame(408, 'if not main_per_device(d, opts):'),
              this.frame('cli/per_device.py', 47, 'main_per_device', 'device.reset_with_os()'),
            ]
          : phase === 'gpu'
            ? [
                this.mainFrame(412, 'if not main_per_gpu(d, opts):'),
                this.frame('cli/per_gpu.py', 233, 'main_per_gpu', 'gpu.reset_with_os()'),
              ]
            : [
                this.mainFrame(415, 'if not main_per_gpu_or_nvswitch(d, opts):'),
                this.frame('cli/per_gpu_nvswitch.py', 135, 'main_per_gpu_or_nvswitch', 'device.reset_with_os()'),
              ];
      throw new PythonException(
        [
          this.entryFrame(),
          ...caller,
          this.frame('pci/device.py', 298, 'reset_with_os', 'return self.sysfs_reset()'),
          this.frame('pci/device.py', 289, 'sysfs_reset', 'rf.write("1")'),
        ],
        pythonOsError(errno),
      );
    }
    await this.deps.sleep(this.settings.resetMs); // boot wait and verification on hardware
  }

  /** An injected tool fault: a traceback, or output no parser knows. */
  private fire(kind: string, devices: ToolDevice[]): ToolOutcome {
    const target = devices[0] ? deviceString(devices[0]) : 'GPU ?';
    if (kind === 'tool-error') {
      throw new PythonException(
        [
          this.entryFrame(),
          this.mainFrame(412, 'if not main_per_gpu(d, opts):'),
          this.frame(
            'gpu/fsp_rpc.py',
            164,
            'prc_cmd',
            'raise FspRpcError(f"{self.device} FSP RPC failed, response timeout")',
          ),
        ],
        `gpu.error.FspRpcError: ${target} FSP RPC failed, response timeout (injected by gpucc-sim)`,
      );
    }
    this.print('%%% gpucc-sim tool-garbage: ¿0x7f? <<>> 3a:00.0 ::: ???');
    this.print('\u001b[31mBAR0 read 0xdeadbeef = 0xbad0bad0\u001b[0m');
    this.io.stderr('WARN: CC-ish mode maybe:  ON?? (state unknown)\n');
    return 0;
  }

  private state(d: ToolDevice): CcState {
    return readCcState(this.root, d.address) ?? initialCcState();
  }

  private async updateState(d: ToolDevice, change: (state: CcState) => CcState): Promise<void> {
    await withNodeLock(this.root, () => writeCcState(this.root, d.address, change(this.state(d))));
  }

  private forcePower(d: ToolDevice): void {
    if (d.powerControl === 'on' || this.forced.includes(d)) return;
    this.forced.push(d);
    this.log(
      'WARNING',
      `${deviceString(d, false)} was in ${d.powerState}/control:${d.powerControl}, forced power control to on. New state D0`,
    );
  }

  private print(line: string): void {
    this.io.stdout(`${line}\n`);
  }

  private log(level: LogLevel, message: string): void {
    this.io.stderr(`${logLine(this.deps.now(), level, message)}\n`);
  }

  private entryFrame(): PythonFrame {
    return { file: this.scriptPath, line: 33, func: '<module>', code: 'main()' };
  }

  private mainFrame(line: number, code: string): PythonFrame {
    return this.frame('cli/main.py', line, 'main', code);
  }

  private frame(file: string, line: number, func: string, code: string): PythonFrame {
    return { file: path.join(this.toolDir, file), line, func, code };
  }
}
