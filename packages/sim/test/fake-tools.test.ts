import { execFile, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { localFs } from '@gpucc/hal';
import { captureCli, tempDir, trackNode } from '@gpucc/testbed/vitest';
import { beforeAll, describe, expect, it } from 'vitest';
import { main as simMain } from '../src/cli.js';
import { openSimulatedHost } from '../src/kernel/index.js';
import { detachDriver } from '../src/node/effects.js';
import { injectFault } from '../src/node/faults.js';
import { Tree } from '../src/node/files.js';
import { layoutNode } from '../src/node/layout.js';
import { WRITE_LOG } from '../src/node/paths.js';
import type { CcState } from '../src/node/spec.js';
import { readCcState, readFaults, readNodeSpec, withNodeLock, writeCcState } from '../src/node/state.js';
import { findProfile, type ProfileOptions } from '../src/profiles/profiles.js';
import {
  bufferIo,
  defaultEntryModule,
  devicesFromSpec,
  discoverNvidiaDevices,
  GPU_TOOLS_PATH,
  installFakeTools,
  isCcCapable,
  isPpcieCapable,
  logLine,
  MODPROBE_PATH,
  NVIDIA_SMI_PATH,
  ONE_COMMAND_ONLY,
  parseGpuToolsArgs,
  parseNvidiaSmiArgs,
  pythonListRepr,
  renderConfCompute,
  runGpuTools,
  type SmiView,
} from '../src/tools/index.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'cc-tools');
const fixture = (name: string) => localFs.readText(path.join(FIXTURES, name));
const lines = (text: string) => text.split('\n').filter((l) => l !== '');

/** The tolerant pattern for a query result line (docs/facts/cc-tools.md#gpu-admin-tools-output). */
const QUERY_LINE =
  /^(\S+)\s+(\w+)\s+(GPU|NvSwitch) ([0-9a-f:.]+) (\S+) (0x[0-9a-f]+) BAR0 0x[0-9a-f]+ (CC|PPCIe) mode is (\S+)$/;
const LOG_LINE = /^\d{4}-\d{2}-\d{2},\d{2}:\d{2}:\d{2}\.\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) {1,5}\S/;

const GPU = '0000:13:00.0'; // first H100 of hgx-h100-8
const GPUS = [0x13, 0x23, 0x33, 0x43, 0x53, 0x63, 0x73, 0x83].map((b) => `0000:${b.toString(16)}:00.0`);
const SWITCHES = ['0000:07:00.0', '0000:08:00.0', '0000:09:00.0', '0000:0a:00.0'];

function makeNode(profile = 'hgx-h100-8', options: ProfileOptions = {}): string {
  const root = trackNode(path.join(tempDir('gpucc-tools-'), 'node'));
  layoutNode(root, findProfile(profile).build(options));
  installFakeTools(root);
  return root;
}

/** Leaves devices unbound (as after vfio-manager's preStop), so the tool may configure them. */
function unbind(root: string, addresses: readonly string[]): void {
  const node = readNodeSpec(root);
  const tree = new Tree(root);
  for (const address of addresses) detachDriver(tree, node, node.devices.find((d) => d.address === address)!);
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs an installed executable as a real process: argument array, no shell, a deadline. */
function run(root: string, rel: string, args: readonly string[], timeoutMs = 15_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(path.join(root, rel), [...args], { timeout: timeoutMs, encoding: 'utf8' }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}
const tool = (root: string, ...args: string[]) => run(root, GPU_TOOLS_PATH, args);
const smi = (root: string, ...args: string[]) => run(root, NVIDIA_SMI_PATH, args);
const modprobe = (root: string, ...args: string[]) => run(root, MODPROBE_PATH, args);

/** The messages of the tool's log lines (timestamp and level stripped). */
function messages(stderr: string): string[] {
  return lines(stderr)
    .filter((l) => LOG_LINE.test(l))
    .map((l) => l.replace(/^\S+ [A-Z]+ +/, ''));
}

function resetWrites(root: string, address: string): number {
  const log = localFs.exists(path.join(root, WRITE_LOG)) ? localFs.readText(path.join(root, WRITE_LOG)) : '';
  return lines(log)
    .map((l) => JSON.parse(l) as { path: string; value: string; result: string })
    .filter((w) => w.path === `sys/bus/pci/devices/${address}/reset` && w.value === '1' && w.result === 'ok').length;
}

const state = (root: string, address: string) => readCcState(root, address)!;

beforeAll(() => {
  // The executables import the compiled package: `tsc -b` must have run.
  expect(localFs.exists(defaultEntryModule()), `${defaultEntryModule()} is missing: run node_modules/.bin/tsc -b`).toBe(
    true,
  );
});

// ---- pure parts -------------------------------------------------------------------------------

describe('fake tools: formatting and parsing', () => {
  it('prints argv as a Python list and log lines in the logging format', () => {
    expect(pythonListRepr(['nvidia_gpu_tools.py', "--gpu-bdf=it's", 'a\\b'])).toBe(
      `['nvidia_gpu_tools.py', "--gpu-bdf=it's", 'a\\\\b']`,
    );
    const line = logLine(new Date(2024, 4, 9, 3, 2, 58, 9), 'INFO', 'Selected X');
    expect(line).toBe('2024-05-09,03:02:58.009 INFO     Selected X');
    expect(logLine(new Date(2024, 4, 9), 'WARNING', 'w')).toMatch(/ WARNING {2}w$/);
  });

  it('parses flags as argparse does', () => {
    const a = parseGpuToolsArgs(['--gpu-bdf', '43:00.0', '--set-cc-mode=devtools', '--reset-after-cc-mode-switch']);
    expect(a).toMatchObject({
      ok: true,
      options: { gpuBdf: '43:00.0', setCcMode: 'devtools', resetAfterCcModeSwitch: true },
    });
    expect(parseGpuToolsArgs(['--gpu=0x2'])).toMatchObject({ ok: true, options: { gpu: 2 } });
    expect(parseGpuToolsArgs(['--set-cc-mode=ppcie'])).toEqual({
      ok: false,
      error: "argument --set-cc-mode: invalid choice: 'ppcie' (choose from 'off', 'on', 'devtools')",
    });
    expect(parseGpuToolsArgs(['--frobnicate', '--query-cc-mode', 'x'])).toEqual({
      ok: false,
      error: 'unrecognized arguments: --frobnicate x',
    });
    expect(parseGpuToolsArgs(['--gpu-bdf'])).toEqual({ ok: false, error: 'argument --gpu-bdf: expected one argument' });
    expect(parseGpuToolsArgs(['--gpu=07'])).toMatchObject({ ok: false });
  });

  it('derives CC and PPCIe capability from the device-ID ranges', () => {
    expect([isCcCapable('gpu', 0x2330), isPpcieCapable('gpu', 0x2330)]).toEqual([true, true]); // H100 SXM
    expect([isCcCapable('gpu', 0x2901), isPpcieCapable('gpu', 0x2901)]).toEqual([true, false]); // B200
    expect([isCcCapable('gpu', 0x2bb5), isPpcieCapable('gpu', 0x2bb5)]).toEqual([true, false]); // gb202
    expect([isCcCapable('gpu', 0x20b0), isPpcieCapable('gpu', 0x20b0)]).toEqual([false, false]); // A100
    expect([isCcCapable('nvswitch', 0x22a3), isPpcieCapable('nvswitch', 0x22a3)]).toEqual([false, true]);
    expect(isPpcieCapable('nvswitch', 0x1af1)).toBe(false); // LR10
  });

  it('selects devices by --devices specs, NVIDIA functions only', () => {
    const root = makeNode();
    const all = discoverNvidiaDevices(root, readNodeSpec(root));
    const pick = (spec: string) => devicesFromSpec(all, spec).map((d) => d.address);
    expect(pick('gpus')).toEqual(GPUS);
    expect(pick('nvswitches')).toEqual(SWITCHES);
    expect(pick('all')).toEqual([...SWITCHES, ...GPUS]);
    expect(pick('gpus[1]')).toEqual([GPUS[1]]);
    expect(pick('gpus[0:2],nvswitches[3]')).toEqual([GPUS[0], GPUS[1], SWITCHES[3]]);
    expect(pick('13:00.0,10de:22a3')).toEqual([GPU, ...SWITCHES]);
    expect(pick('0000:10:01.1')).toEqual([]); // a bridge
  });

  it('nvidia-smi conf-compute takes exactly one command and has no way to set a mode', () => {
    expect(parseNvidiaSmiArgs(['conf-compute', '-f', '-d'])).toEqual({
      kind: 'usage-error',
      message: ONE_COMMAND_ONLY,
    });
    expect(parseNvidiaSmiArgs(['conf-compute', '--set-cc-mode=on']).kind).toBe('usage-error');
    expect(parseNvidiaSmiArgs(['conf-compute', '-scc', '1']).kind).toBe('usage-error');
    expect(parseNvidiaSmiArgs(['conf-compute', '-grs'])).toEqual({ kind: 'conf-compute', command: 'grs' });
  });

  it('renders the -q summary in the 580 layout (docs/facts/cc-tools.md#sample-conf-compute-summary-cc-on)', () => {
    const view: SmiView = {
      tee: 'tdx',
      driverVersion: '580.95.05',
      gpus: [{ index: 0, address: GPU, ccCapable: true, ppcieCapable: true, cc: 'on', ppcie: 'off' }],
    };
    const expected = lines(fixture('7.5-conf-compute-q-cc-on.txt'));
    const got = renderConfCompute('q', view);
    // Only the ready state differs: it is set inside the guest, never on the host.
    expect(got.slice(0, -1)).toEqual(expected.slice(0, -1));
    expect(got.at(-1)).toBe('    CC GPUs Ready State        : Not Ready');
  });
});

// ---- nvidia_gpu_tools.py as a process -----------------------------------------------------------

describe('fake nvidia_gpu_tools.py', () => {
  it('queries the CC mode: header and Topo on stdout, log lines on stderr', async () => {
    const root = makeNode();
    const r = await tool(root, '--gpu-bdf=13:00.0', '--query-cc-mode');
    expect(r.code).toBe(0);
    expect(lines(r.stdout)).toEqual([
      'NVIDIA GPU Tools version v2025.10.20',
      `Command line arguments: ['${path.join(root, GPU_TOOLS_PATH)}', '--gpu-bdf=13:00.0', '--query-cc-mode']`,
      'Topo:',
      '  PciBridge 0000:10:01.1 14ab:1022',
      '   PciBridge 0000:11:00.0 c030:1000',
      '    PciBridge 0000:12:00.0 c030:1000',
      '     GPU 0000:13:00.0 H100-SXM 0x2330 BAR0 0xa8000000000',
    ]);
    expect(lines(r.stderr).every((l) => LOG_LINE.test(l))).toBe(true);
    expect(messages(r.stderr)).toEqual([
      'GPU 0000:13:00.0 ? 0x2330 BAR0 0x0 was in D0/control:auto, forced power control to on. New state D0',
      'Selected GPU 0000:13:00.0 H100-SXM 0x2330 BAR0 0xa8000000000',
      'GPU 0000:13:00.0 H100-SXM 0x2330 BAR0 0xa8000000000 CC mode is off',
      'GPU 0000:13:00.0 H100-SXM 0x2330 BAR0 0xa8000000000 restoring power control to auto',
    ]);
    const query = lines(r.stderr).find((l) => QUERY_LINE.test(l));
    expect(QUERY_LINE.exec(query!)?.slice(3)).toEqual(['GPU', GPU, 'H100-SXM', '0x2330', 'CC', 'off']);
  });

  it('sets a mode that stays pending until a reset', async () => {
    const root = makeNode();
    unbind(root, [GPU]);
    const set = await tool(root, '--gpu-bdf=13:00.0', '--set-cc-mode=on');
    expect(set.code).toBe(0);
    expect(messages(set.stderr)).toContain(
      'GPU 0000:13:00.0 H100-SXM 0x2330 BAR0 0xa8000000000 CC mode set to on. It will be active after GPU reset.',
    );
    expect(state(root, GPU)).toEqual<CcState>({ cc: 'off', ccPending: 'on', ppcie: 'off', ppciePending: 'off' });
    expect(resetWrites(root, GPU)).toBe(0);
    const query = await tool(root, '--gpu-bdf=13:00.0', '--query-cc-mode');
    expect(messages(query.stderr)).toContain('GPU 0000:13:00.0 H100-SXM 0x2330 BAR0 0xa8000000000 CC mode is off');
  });

  it('sets on and resets through the kernel simulator, after which the query says on', async () => {
    const root = makeNode();
    unbind(root, [GPU]);
    const set = await tool(root, '--gpu-bdf=13:00.0', '--set-cc-mode=on', '--reset-after-cc-mode-switch');
    expect(set.code).toBe(0);
    expect(messages(set.stderr).slice(2, 4)).toEqual([
      'GPU 0000:13:00.0 H100-SXM 0x2330 BAR0 0xa8000000000 CC mode set to on. It will be active after GPU reset.',
      'GPU 0000:13:00.0 H100-SXM 0x2330 BAR0 0xa8000000000 was reset to apply the new CC mode.',
    ]);
    expect(resetWrites(root, GPU)).toBe(1);
    expect(state(root, GPU)).toMatchObject({ cc: 'on', ccPending: 'on' });
    const query = await tool(root, '--gpu-bdf=13:00.0', '--query-cc-mode');
    expect(messages(query.stderr)).toContain(
      'GPU 0000:13:00.0 H100-SXM 0x2330 BAR0 0xa8000000000 has CC mode on, some functionality may not work',
    );
    expect(messages(query.stderr)).toContain('GPU 0000:13:00.0 H100-SXM 0x2330 BAR0 0xa8000000000 CC mode is on');
    expect(resetWrites(root, '0000:23:00.0')).toBe(0);
  });

  it('resets first and sets second with --reset-with-os, as the real tool orders its phases', async () => {
    const root = makeNode();
    unbind(root, [GPU]);
    const r = await tool(root, '--gpu-bdf=13:00.0', '--set-cc-mode=devtools', '--reset-with-os');
    expect(r.code).toBe(0);
    expect(resetWrites(root, GPU)).toBe(1);
    expect(state(root, GPU)).toMatchObject({ cc: 'off', ccPending: 'devtools' });
  });

  it('refuses to configure a GPU while the nvidia driver is bound (gpu-admin-tools#13)', async () => {
    const root = makeNode(); // profiles start bound to nvidia
    const r = await tool(root, '--gpu-bdf=13:00.0', '--set-cc-mode=on', '--reset-after-cc-mode-switch');
    expect(r.code).toBe(1);
    expect(messages(r.stderr)).toContain(
      'The nvidia driver appears to be using GPU 0000:13:00.0 H100-SXM 0x2330 BAR0 0xa8000000000, aborting. Specify --ignore-nvidia-driver to ignore this check.',
    );
    expect(state(root, GPU)).toMatchObject({ cc: 'off', ccPending: 'off' });
    expect(resetWrites(root, GPU)).toBe(0);
  });

  it('switches every GPU and NVSwitch of an HGX H100 to PPCIe (PPCIe on clears CC)', async () => {
    const root = makeNode();
    unbind(root, GPUS);
    writeCcState(root, GPUS[1]!, { cc: 'on', ccPending: 'on', ppcie: 'off', ppciePending: 'off' });
    const r = await tool(root, '--devices', 'all', '--set-ppcie-mode=on', '--reset-after-ppcie-mode-switch');
    expect(r.code).toBe(0);
    const reset = messages(r.stderr).filter((m) => m.endsWith('was reset to apply the new PPCIe mode.'));
    expect(reset).toHaveLength(12);
    expect(reset[0]).toBe(
      'NvSwitch 0000:07:00.0 NVSwitch_gen3 0x22a3 BAR0 0x2c000000000 was reset to apply the new PPCIe mode.',
    );
    for (const address of [...GPUS, ...SWITCHES]) {
      expect(state(root, address)).toMatchObject({ cc: 'off', ppcie: 'on' });
      expect(resetWrites(root, address)).toBe(1);
    }
    const query = await tool(root, '--devices', 'all', '--query-ppcie-mode', '--query-cc-mode');
    expect(query.code).toBe(0);
    const results = lines(query.stderr)
      .map((l) => QUERY_LINE.exec(l))
      .filter((m) => m !== null)
      .map((m) => `${m[3]} ${m[7]} ${m[8]}`);
    // CC is a GPU phase: switches answer PPCIe only.
    expect(results.filter((x) => x === 'NvSwitch PPCIe on')).toHaveLength(4);
    expect(results.filter((x) => x === 'GPU PPCIe on')).toHaveLength(8);
    expect(results.filter((x) => x === 'GPU CC off')).toHaveLength(8);
  });

  it('twelve tool processes at once, one per device as cc-manager runs them: every device reads PPCIe on', async () => {
    const root = makeNode();
    unbind(root, GPUS);
    const calls = [...SWITCHES, ...GPUS].map((address) =>
      tool(
        root,
        `--gpu-bdf=${address}`,
        ...(GPUS.includes(address) ? ['--set-cc-mode=off'] : []),
        '--set-ppcie-mode=on',
        '--reset-after-ppcie-mode-switch',
      ),
    );
    // Readers at the same time, as a status or doctor run would be.
    const readers = [
      tool(root, '--devices', 'all', '--query-ppcie-mode'),
      tool(root, '--devices', 'all', '--query-cc-mode'),
    ];
    expect((await Promise.all(calls)).map((r) => r.code)).toEqual(Array(12).fill(0));
    await Promise.all(readers);
    const query = await tool(root, '--devices', 'all', '--query-ppcie-mode');
    const on = lines(query.stderr).filter((l) => QUERY_LINE.exec(l)?.[8] === 'on');
    expect(on).toHaveLength(12);
    for (const address of [...GPUS, ...SWITCHES]) expect(resetWrites(root, address)).toBe(1);
  });

  it('a knob written while a reset of the same device is under way is not lost: the reset takes the node lock', async () => {
    const root = makeNode();
    const sysfs = openSimulatedHost(root);
    await sysfs.write(`sys/bus/pci/devices/${SWITCHES[0]}/power/control`, 'on'); // the kernel runs
    let reset: Promise<void> | undefined;
    await withNodeLock(root, async () => {
      // A tool's knob write holds the lock; the reset the kernel started meanwhile must wait for it.
      reset = sysfs.write(`sys/bus/pci/devices/${SWITCHES[0]}/reset`, '1');
      await new Promise((resolve) => setTimeout(resolve, 200));
      writeCcState(root, SWITCHES[0]!, { ...state(root, SWITCHES[0]!), ppciePending: 'on' });
    });
    await reset;
    expect(state(root, SWITCHES[0]!)).toMatchObject({ ppcie: 'on', ppciePending: 'on' });
  });

  it('switches one NVSwitch by BDF', async () => {
    const root = makeNode();
    const r = await tool(root, '--gpu-bdf=08:00.0', '--set-ppcie-mode=on', '--reset-after-ppcie-mode-switch');
    expect(r.code).toBe(0);
    expect(messages(r.stderr)).toContain(
      'NvSwitch 0000:08:00.0 NVSwitch_gen3 0x22a3 BAR0 0x2c002000000 PPCIe mode set to on. It will be active after GPU or switch reset.',
    );
    expect(state(root, '0000:08:00.0')).toMatchObject({ ppcie: 'on' });
    expect(state(root, '0000:07:00.0')).toMatchObject({ ppcie: 'off' });
  });

  it('refuses PPCIe on Blackwell but switches its CC mode', async () => {
    const root = makeNode('hgx-b200-8');
    const b200 = discoverNvidiaDevices(root, readNodeSpec(root))[0]!;
    unbind(root, [b200.address]);
    const bdf = b200.address.slice(5);
    const ppcie = await tool(root, `--gpu-bdf=${bdf}`, '--set-ppcie-mode=on', '--reset-after-ppcie-mode-switch');
    expect(ppcie.code).toBe(1);
    expect(
      messages(ppcie.stderr).some((m) =>
        /^Configuring PPCIe not supported on GPU \S+ B200 0x2901 BAR0 0x[0-9a-f]+$/.test(m),
      ),
    ).toBe(true);
    expect(state(root, b200.address)).toMatchObject({ ppcie: 'off', ppciePending: 'off' });
    const query = await tool(root, `--gpu-bdf=${bdf}`, '--query-ppcie-mode');
    expect(query.code).toBe(1);
    expect(messages(query.stderr).some((m) => m.startsWith('Querying PPCIe mode is not supported on GPU'))).toBe(true);
    const cc = await tool(root, `--gpu-bdf=${bdf}`, '--set-cc-mode=on', '--reset-after-cc-mode-switch');
    expect(cc.code).toBe(0);
    expect(state(root, b200.address)).toMatchObject({ cc: 'on' });
  });

  it('fails when a selector matches nothing, and never matches non-NVIDIA devices', async () => {
    const root = makeNode();
    const none = await tool(root, '--gpu-bdf=ff:00.0', '--query-cc-mode');
    expect(none.code).toBe(1);
    expect(messages(none.stderr)).toEqual(['Matching for ff:00.0 found nothing']);
    expect(lines(none.stdout)).toHaveLength(2); // header only, no Topo
    const bridge = await tool(root, '--gpu-bdf=10:01.1', '--query-cc-mode');
    expect(messages(bridge.stderr)).toEqual(['Matching for 10:01.1 found nothing']);
    const many = await tool(root, '--gpu-bdf=3:00.0', '--query-cc-mode');
    expect(many.code).toBe(1);
    expect(
      messages(many.stderr).some((m) => /^Matching for 3:00\.0 found more than one GPU GPU 0000:13:00\.0 /.test(m)),
    ).toBe(true);
    const devices = await tool(root, '--devices', '0000:ff:00.0', '--query-cc-mode');
    expect(devices.code).toBe(1);
    expect(messages(devices.stderr)).toEqual(['No devices found matching: 0000:ff:00.0']);
  });

  it('lists devices and selects by index', async () => {
    const root = makeNode();
    const list = await tool(root);
    expect(list.code).toBe(0);
    expect(lines(list.stdout)).toContain('  0 NvSwitch 0000:07:00.0 NVSwitch_gen3 0x22a3 BAR0 0x2c000000000');
    expect(lines(list.stdout)).toContain('  4 GPU 0000:13:00.0 H100-SXM 0x2330 BAR0 0xa8000000000');
    expect(messages(list.stderr)).toContain('No GPU specified, select GPU with --gpu, --gpu-bdf, or --gpu-name');
    const byIndex = await tool(root, '--gpu=4', '--query-cc-mode');
    expect(messages(byIndex.stderr)).toContain('GPU 0000:13:00.0 H100-SXM 0x2330 BAR0 0xa8000000000 CC mode is off');
    const outOfRange = await tool(root, '--gpu', '12', '--query-cc-mode');
    expect(outOfRange.code).toBe(1);
    expect(lines(outOfRange.stderr)).toContain('ValueError: GPU index out of bounds');
  });

  it('exits 2 with argparse usage on a bad command line', async () => {
    const root = makeNode();
    const r = await tool(root, '--gpu-bdf=13:00.0', '--set-cc-mode=maybe');
    expect(r.code).toBe(2);
    expect(lines(r.stderr).at(-1)).toBe(
      "nvidia_gpu_tools.py: error: argument --set-cc-mode: invalid choice: 'maybe' (choose from 'off', 'on', 'devtools')",
    );
  });

  it('reports a mode that did not take after the reset (cc-stuck) as the real tool does: traceback, exit 1', async () => {
    const root = makeNode();
    unbind(root, [GPU]);
    await injectFault(root, { kind: 'cc-stuck', device: GPU, times: 1 });
    const r = await tool(root, '--gpu-bdf=13:00.0', '--set-cc-mode=on', '--reset-after-cc-mode-switch');
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toContain('Traceback (most recent call last):');
    expect(lines(r.stderr)).toContain(
      'gpu.error.GpuError: GPU 0000:13:00.0 H100-SXM 0x2330 BAR0 0xa8000000000 failed to switch to CC mode on, current mode is off.',
    );
    expect(state(root, GPU)).toMatchObject({ cc: 'off', ccPending: 'on' });
  });

  it('turns a failed reset write into a Python OSError', async () => {
    const root = makeNode();
    unbind(root, [GPU]);
    await injectFault(root, { kind: 'reset-error', device: GPU, errno: 'EIO' });
    const r = await tool(root, '--gpu-bdf=13:00.0', '--set-cc-mode=on', '--reset-after-cc-mode-switch');
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toContain('OSError: [Errno 5] Input/output error');
  });
});

// ---- injected tool faults -------------------------------------------------------------------------

describe('fake nvidia_gpu_tools.py: faults', () => {
  it('tool-hang: never exits', async () => {
    const root = makeNode();
    await injectFault(root, { kind: 'tool-hang', device: GPU, times: 1 });
    const child = spawn(path.join(root, GPU_TOOLS_PATH), ['--gpu-bdf=13:00.0', '--query-cc-mode']);
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    let stderr = '';
    // The power warning comes after the fault was taken: from then on the tool must sit there.
    await new Promise<void>((resolve) =>
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        if (stderr.includes('forced power control to on')) resolve();
      }),
    );
    const still = await Promise.race([
      exited.then(() => 'exited'),
      new Promise((r) => setTimeout(() => r('running'), 500)),
    ]);
    child.kill('SIGKILL');
    await exited;
    expect(still).toBe('running');
    expect(messages(stderr).some((m) => m.includes('CC mode is'))).toBe(false);
    expect(readFaults(root)).toEqual([]); // used up
    const next = await tool(root, '--gpu-bdf=13:00.0', '--query-cc-mode');
    expect(next.code).toBe(0);
  });

  it('tool-error: a Python traceback on stderr and exit 1, for the faulted device only', async () => {
    const root = makeNode();
    await injectFault(root, { kind: 'tool-error', device: GPU, times: 2 });
    const other = await tool(root, '--gpu-bdf=23:00.0', '--query-cc-mode');
    expect(other.code).toBe(0);
    const r = await tool(root, '--gpu-bdf=13:00.0', '--query-cc-mode');
    expect(r.code).toBe(1);
    expect(lines(r.stderr)).toContain('Traceback (most recent call last):');
    expect(lines(r.stderr).some((l) => /^gpu\.error\.FspRpcError: GPU 0000:13:00\.0 /.test(l))).toBe(true);
    expect(lines(r.stderr).some((l) => QUERY_LINE.test(l))).toBe(false);
    expect(readFaults(root)).toEqual([{ kind: 'tool-error', device: GPU, times: 1 }]);
  });

  it('tool-garbage: exit 0 with lines no parser knows', async () => {
    const root = makeNode();
    await injectFault(root, { kind: 'tool-garbage' });
    const r = await tool(root, '--gpu-bdf=13:00.0', '--query-cc-mode');
    expect(r.code).toBe(0);
    const all = [...lines(r.stdout).slice(2), ...lines(r.stderr)];
    expect(all.length).toBeGreaterThan(0);
    expect(all.some((l) => QUERY_LINE.test(l) || l.startsWith('Topo:'))).toBe(false);
    expect(readFaults(root)).toHaveLength(1); // no `times`: fires every time
  });

  it('sleeps the configured latency per start, set and reset', async () => {
    const root = makeNode();
    unbind(root, [GPU]);
    localFs.writeFileSync(path.join(root, '.gpucc-sim/tools.json'), '{"startMs": 200, "setMs": 150, "resetMs": 300}\n');
    const started = Date.now();
    const r = await tool(root, '--gpu-bdf=13:00.0', '--set-cc-mode=on', '--reset-after-cc-mode-switch');
    expect(r.code).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(650);
  });
});

// ---- firmware without CC or PPCIe (fw-no-cc, fw-no-ppcie) ----------------------------------------------

/** gpucc-sim in-process, as a user runs it: stdout, stderr and the exit code. */
const gpuccSim = (...args: string[]) => captureCli(simMain, 'gpucc-sim', args);

/** Raw stderr log lines with their message, the padding after the level kept (knob lines indent). */
const rawMessages = (stderr: string) => lines(stderr).map((l) => l.replace(/^\S+ [A-Z]+ {1,5}/, ''));

describe('fake nvidia_gpu_tools.py: firmware without CC or PPCIe', () => {
  const H100 = 'GPU 0000:13:00.0 H100-SXM 0x2330 BAR0 0xa8000000000';
  const SWITCH = 'NvSwitch 0000:08:00.0 NVSwitch_gen3 0x22a3 BAR0 0x2c002000000';

  it('fw-no-cc (gpucc-sim fault --kind fw-no-cc): the tool cannot query or configure CC on that GPU, exit 1', async () => {
    const root = makeNode();
    unbind(root, GPUS);
    const injected = await gpuccSim('fault', root, '--kind', 'fw-no-cc', '--device', GPU);
    expect(injected).toMatchObject({ code: 0, out: `fault fw-no-cc injected on ${GPU}\n` });

    const query = await tool(root, '--gpu-bdf=13:00.0', '--query-cc-mode');
    expect(query.code).toBe(1);
    expect(lines(query.stderr).filter((l) => /ERROR/.test(l))).toEqual([
      expect.stringMatching(new RegExp(`^\\S+ ERROR {4}Querying CC mode is not supported on ${H100}$`)),
    ]);
    expect(lines(query.stderr).some((l) => QUERY_LINE.test(l))).toBe(false);

    const set = await tool(root, '--gpu-bdf=13:00.0', '--set-cc-mode=on', '--reset-after-cc-mode-switch');
    expect(set.code).toBe(1);
    expect(messages(set.stderr)).toContain(`Configuring CC not supported on ${H100}`);
    expect(state(root, GPU)).toMatchObject({ cc: 'off', ccPending: 'off' });
    expect(resetWrites(root, GPU)).toBe(0);

    // Other GPUs answer; a batch stops at the refused GPU, as the real tool exits at the first failure.
    const other = await tool(root, '--gpu-bdf=23:00.0', '--query-cc-mode');
    expect(other.code).toBe(0);
    const batch = await tool(root, '--devices', `${GPUS[0]},${GPUS[1]}`, '--query-cc-mode');
    expect(batch.code).toBe(1);
    expect(messages(batch.stderr).filter((m) => / CC mode is |not supported/.test(m))).toEqual([
      `Querying CC mode is not supported on ${H100}`,
    ]);
    // Its PPCIe is separate firmware: still there.
    expect((await tool(root, '--gpu-bdf=13:00.0', '--query-ppcie-mode', '--query-ppcie-settings')).code).toBe(0);

    // It is the device's firmware: never used up, no --times; clearing it is the firmware update.
    expect(readFaults(root)).toEqual([{ kind: 'fw-no-cc', device: GPU }]);
    const times = await gpuccSim('fault', root, '--kind', 'fw-no-cc', '--times', '1');
    expect(times.code).toBe(1); // as for any fault gpucc-sim refuses
    expect(times.err).toMatch(/ERR_GPUCC_SIM_INVALID_FAULT: fw-no-cc is the device's firmware/);
    expect((await gpuccSim('fault', root, '--clear', '--kind', 'fw-no-cc')).code).toBe(0);
    expect(messages((await tool(root, '--gpu-bdf=13:00.0', '--query-cc-mode')).stderr)).toContain(
      `${H100} CC mode is off`,
    );
  });

  it('fw-no-ppcie: the PPCIe mode still reads (a register), its settings and a switch fail as on old FW, exit 1', async () => {
    const root = makeNode();
    unbind(root, [...GPUS, ...SWITCHES]);
    await injectFault(root, { kind: 'fw-no-ppcie', device: '0000:08:00.0' });

    const mode = await tool(root, '--gpu-bdf=08:00.0', '--query-ppcie-mode');
    expect(mode.code).toBe(0);
    expect(messages(mode.stderr)).toContain(`${SWITCH} PPCIe mode is off`);

    const settings = await tool(root, '--gpu-bdf=08:00.0', '--query-ppcie-mode', '--query-ppcie-settings');
    expect(settings.code).toBe(1);
    expect(messages(settings.stderr).slice(-3)).toEqual([
      `${SWITCH} PPCIe mode is off`,
      `${SWITCH} does not support PPCIe on current FW. A FW update is required.`,
      `${SWITCH} restoring power control to auto`,
    ]);
    expect(lines(settings.stderr).find((l) => l.includes('does not support PPCIe'))).toMatch(/^\S+ ERROR {4}NvSwitch /);

    const set = await tool(root, '--gpu-bdf=08:00.0', '--set-ppcie-mode=on', '--reset-after-ppcie-mode-switch');
    expect(set.code).toBe(1);
    expect(messages(set.stderr)).toContain(`${SWITCH} does not support PPCIe on current FW. A FW update is required.`);
    expect(state(root, '0000:08:00.0')).toMatchObject({ ppcie: 'off', ppciePending: 'off' });
    expect(resetWrites(root, '0000:08:00.0')).toBe(0);

    // Current firmware answers the settings: the knob holds what the next reset applies.
    const good = await tool(root, '--gpu-bdf=07:00.0', '--set-ppcie-mode=on');
    expect(good.code).toBe(0);
    const knobs = await tool(root, '--gpu-bdf=07:00.0', '--query-ppcie-settings');
    expect(knobs.code).toBe(0);
    const name = 'NvSwitch 0000:07:00.0 NVSwitch_gen3 0x22a3 BAR0 0x2c000000000';
    expect(rawMessages(knobs.stderr).slice(-4, -1)).toEqual([
      `${name} PPCIe settings:`,
      '  enable = 1',
      '  enable-allow-inband-control = 0',
    ]);
    // A GPU without PPCIe at all (Blackwell) is refused by capability, not by firmware.
    const b200 = makeNode('hgx-b200-8');
    const bdf = discoverNvidiaDevices(b200, readNodeSpec(b200))[0]!.address.slice(5);
    const refused = await tool(b200, `--gpu-bdf=${bdf}`, '--query-ppcie-settings');
    expect(refused.code).toBe(1);
    expect(messages(refused.stderr).some((m) => m.startsWith('Querying PPCIe settings is not supported on GPU'))).toBe(
      true,
    );
  });

  it('parses --query-ppcie-settings as a flag', () => {
    const parsed = parseGpuToolsArgs(['--devices', 'all', '--query-ppcie-settings']);
    expect(parsed.ok && parsed.options.queryPpcieSettings).toBe(true);
    expect(parseGpuToolsArgs(['--query-ppcie-settings=1'])).toEqual({
      ok: false,
      error: "argument --query-ppcie-settings: ignored explicit argument '1'",
    });
  });
});

// ---- the same shapes as the real output -----------------------------------------------------------

/** A line with its variable parts (time, device string, bridge, version, argv) replaced by placeholders. */
function shape(line: string): string {
  return line
    .replace(/^\d{4}-\d{2}-\d{2},\d{2}:\d{2}:\d{2}\.\d{3} /, '<time> ')
    .replace(/(GPU|NvSwitch) [0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7] \S+ 0x[0-9a-f]+ BAR0 0x[0-9a-f]+/g, '<device>')
    .replace(/^( +)(Intel root port [0-9a-f:.]+|PciBridge [0-9a-f:.]+ [0-9a-f]{4}:[0-9a-f]{4})$/, '$1<bridge>')
    .replace(/^NVIDIA GPU Tools version \S+$/, 'NVIDIA GPU Tools version <version>')
    .replace(/^Command line arguments: \[.*\]$/, 'Command line arguments: [<argv>]');
}

describe('fake tool output has the shape of the real samples (docs/facts/cc-tools.md)', () => {
  const at = () => new Date(2025, 8, 16, 12, 34, 15, 923);

  it('--query-cc-mode matches the query sample line for line', async () => {
    const root = makeNode();
    const io = bufferIo();
    const code = await runGpuTools(
      root,
      path.join(root, GPU_TOOLS_PATH),
      ['--gpu-bdf=13:00.0', '--query-cc-mode'],
      io,
      { now: at },
    );
    expect(code).toBe(0);
    const sample = lines(fixture('7.7-gpu-tools-query-cc-mode.txt'));
    expect(lines(io.merged).map(shape)).toEqual(sample.map(shape));
    const ours = lines(io.merged).filter((l) => QUERY_LINE.test(l));
    expect(ours).toHaveLength(1);
    expect(sample.filter((l) => QUERY_LINE.test(l))).toHaveLength(1);
  });

  it('--set-cc-mode=off --reset-after-cc-mode-switch matches the set-and-reset sample from the Selected line on', async () => {
    const root = makeNode();
    unbind(root, [GPU]);
    writeCcState(root, GPU, { cc: 'on', ccPending: 'on', ppcie: 'off', ppciePending: 'off' });
    const io = bufferIo();
    const args = ['--gpu-bdf=13:00.0', '--set-cc-mode=off', '--reset-after-cc-mode-switch'];
    expect(await runGpuTools(root, path.join(root, GPU_TOOLS_PATH), args, io, { now: at })).toBe(0);
    const fromSelected = (all: string[]) => all.slice(all.findIndex((l) => l.includes(' Selected ')));
    const sample = fromSelected(lines(fixture('7.8-gpu-tools-set-cc-mode-off-reset.txt'))).map(shape);
    const ours = fromSelected(lines(io.merged)).map(shape);
    // The sample was cut before the power-control restore line that ends every run.
    expect(ours).toEqual([...sample, '<time> WARNING  <device> restoring power control to auto']);
    expect(state(root, GPU)).toMatchObject({ cc: 'off' });
  });
});

// ---- nvidia-smi -------------------------------------------------------------------------------------

describe('fake nvidia-smi', () => {
  const setAll = (root: string, addresses: readonly string[], s: CcState) => {
    for (const a of addresses) writeCcState(root, a, s);
  };

  it('answers conf-compute queries exactly as the real samples', async () => {
    const root = makeNode('hgx-h100-8', { tee: 'tdx' });
    expect((await smi(root, 'conf-compute', '-f')).stdout).toBe(fixture('7.1-conf-compute-f-off.txt'));
    expect((await smi(root, 'conf-compute', '-d')).stdout).toBe(fixture('7.2-conf-compute-d.txt'));
    expect((await smi(root, 'conf-compute', '-e')).stdout).toBe(fixture('7.3-conf-compute-e.txt'));
    expect((await smi(root, 'conf-compute', '-grs')).stdout).toBe(fixture('7.4-conf-compute-grs-not-ready.txt'));
    expect((await smi(root, 'conf-compute', '-gc')).stdout).toBe('CPU CC capabilities: INTEL TDX\n');
    expect((await smi(root, 'conf-compute', '-mgm')).stdout).toBe('Multi-GPU Mode: None\n');

    setAll(root, GPUS.slice(0, 7), { cc: 'on', ccPending: 'on', ppcie: 'off', ppciePending: 'off' });
    expect((await smi(root, 'conf-compute', '-f')).stdout).toBe('CC status: OFF\n'); // one GPU still off
    setAll(root, GPUS.slice(7), { cc: 'on', ccPending: 'on', ppcie: 'off', ppciePending: 'off' });
    const on = await smi(root, 'conf-compute', '-f');
    expect([on.code, on.stdout]).toEqual([0, fixture('7.1-conf-compute-f-on.txt')]);
    const q = lines((await smi(root, 'conf-compute', '-q')).stdout);
    expect(q.slice(0, -1)).toEqual(lines(fixture('7.5-conf-compute-q-cc-on.txt')).slice(0, -1));

    setAll(root, GPUS, { cc: 'devtools', ccPending: 'devtools', ppcie: 'off', ppciePending: 'off' });
    expect((await smi(root, 'conf-compute', '-d')).stdout).toBe('DevTools Mode: ON\n');
  });

  it('reports PPCIe as the PPCIe summary sample does', async () => {
    const root = makeNode('hgx-h100-8', { tee: 'tdx' });
    setAll(root, [...GPUS, ...SWITCHES], { cc: 'off', ccPending: 'off', ppcie: 'on', ppciePending: 'on' });
    expect((await smi(root, 'conf-compute', '-mgm')).stdout).toBe('Multi-GPU Mode: Protected PCIe\n');
    const q = lines((await smi(root, 'conf-compute', '-q')).stdout);
    // 580 prints no blank line after the header; the PPCIe sample (another build) does.
    expect(q.slice(0, -1)).toEqual(lines(fixture('7.6-conf-compute-q-ppcie.txt')).slice(0, -1));
  });

  it('allows one conf-compute command at a time and has no flag that sets a mode', async () => {
    const root = makeNode();
    const two = await smi(root, 'conf-compute', '-f', '-d');
    expect(two.code).not.toBe(0);
    expect(two.stdout).toContain(ONE_COMMAND_ONLY);
    const set = await smi(root, 'conf-compute', '--set-cc-mode', 'on');
    expect(set.code).toBe(2);
  });

  it('needs GPUs bound to the nvidia driver', async () => {
    const root = makeNode();
    unbind(root, GPUS);
    const r = await smi(root, 'conf-compute', '-f');
    expect(r.code).toBe(9);
    expect(r.stdout).toBe(
      "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.\n",
    );
  });

  it('prints the driver version per GPU', async () => {
    const root = makeNode();
    const r = await smi(root, '--query-gpu=driver_version', '--format=csv,noheader');
    expect(r.code).toBe(0);
    expect(lines(r.stdout)).toEqual(Array(8).fill('580.95.05'));
    const bus = await smi(root, '--query-gpu=pci.bus_id', '--format=csv', '-i', '0');
    expect(lines(bus.stdout)).toEqual(['pci.bus_id', '00000000:13:00.0']);
  });
});

// ---- modprobe ---------------------------------------------------------------------------------------

describe('fake modprobe', () => {
  it('loads vfio_pci: the driver registers and node.json records it', async () => {
    const root = makeNode('hgx-h100-8', { vfioLoaded: false });
    expect(localFs.exists(path.join(root, 'sys/bus/pci/drivers/vfio-pci'))).toBe(false);
    const r = await modprobe(root, 'vfio_pci');
    expect([r.code, r.stdout, r.stderr]).toEqual([0, '', '']);
    expect(localFs.exists(path.join(root, 'sys/bus/pci/drivers/vfio-pci/bind'))).toBe(true);
    expect(localFs.exists(path.join(root, 'sys/module/vfio_pci'))).toBe(true);
    expect(readNodeSpec(root).drivers.find((d) => d.name === 'vfio-pci')?.loaded).toBe(true);
    const again = await modprobe(root, 'vfio-pci');
    expect([again.code, again.stderr]).toEqual([0, '']);
  });

  it('fails for a module the node does not have', async () => {
    const root = makeNode();
    const r = await modprobe(root, 'nouveau');
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `modprobe: FATAL: Module nouveau not found in directory /lib/modules/${readNodeSpec(root).kernelRelease}\n`,
    );
  });
});

describe('installFakeTools', () => {
  it('writes three executables with a node shebang', () => {
    const root = makeNode();
    for (const rel of [GPU_TOOLS_PATH, NVIDIA_SMI_PATH, MODPROBE_PATH]) {
      const abs = path.join(root, rel);
      expect(localFs.modeOf(abs)).toBe(0o755);
      expect(localFs.readText(abs).startsWith('#!/usr/bin/env node\n')).toBe(true);
    }
  });
});
