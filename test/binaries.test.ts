// `pnpm build:binaries` (scripts/build-binaries.mjs): each operand's single-file bundle, and one single
// executable (SEA), run on their own from a directory outside the repository (so no node_modules can
// help them) against a simulated HGX H100 node. A deployed binary carries no simulator: these runs
// attach it from the repository (node --import packages/sim/bin/attach.mjs), and without it a binary
// refuses a simulated node. Needs the compiled packages (`pnpm build`), as CI has.
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { SIMULATED_NODE_MARKER } from '@gpucc/hal';
import { readWriteLog, simulatorAttachment } from '@gpucc/sim';
import { ATTACH_SIMULATOR } from '@gpucc/testbed';
import { simNode } from '@gpucc/testbed/vitest';
import { STATE_FILE } from '@gpucc/vfio-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DAEMON_NODE_OPTIONS } from '../scripts/bundle.mjs';

const execFileAsync = promisify(execFile);
const BUILD = path.resolve(import.meta.dirname, '../scripts/build-binaries.mjs');
// Names that only the simulator's code has: the kernel simulator, the fake kubelet, the fake API
// server, the node layout and the fake tools.
const SIMULATOR_ONLY = [
  'KernelSimulator',
  'FakeKubelet',
  'registerApiServerCommands',
  'layoutNode',
  'installFakeTools',
];
const OPERANDS = {
  'vfio-manager': ['plan', 'bind', 'unbind', 'status', 'run'],
  'cc-manager': ['status', 'doctor', 'set', 'run'],
  'kata-manager': ['generate', 'write', 'run'],
  'sandbox-device-plugin': ['list', 'run'],
  gpucc: ['status'],
} as const;
type Operand = keyof typeof OPERANDS;
// The executable tested: cc-manager status also starts the node's fake CC tool, a second process.
const SEA_BINARY: Operand = 'cc-manager';

// As the build script decides: a Node built with the SEA fuse (not yet flipped), on Linux or macOS.
const seaUnsupported =
  process.platform !== 'linux' && process.platform !== 'darwin'
    ? `no single executables on ${process.platform}`
    : readFileSync(process.execPath).includes('NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2:0')
      ? undefined
      : `${process.execPath} (Node ${process.version}) has no SEA fuse`;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a file (an executable, or a .mjs with this Node) with the simulator attached (or not) and
 * returns its exit code and output.
 */
async function run(
  file: string,
  args: string[],
  { attach = true, env }: { attach?: boolean; env?: NodeJS.ProcessEnv } = {},
): Promise<Result> {
  // A single executable takes no --import: it can only run without the simulator.
  const [command, argv] = file.endsWith('.mjs')
    ? [process.execPath, [...(attach ? ['--import', ATTACH_SIMULATOR] : []), file, ...args]]
    : [file, args];
  try {
    const { stdout, stderr } = await execFileAsync(command, argv, {
      timeout: 15_000,
      cwd: os.tmpdir(),
      ...(env ? { env: { ...process.env, ...env } } : {}),
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const { code, stdout, stderr } = error as { code: unknown; stdout?: string; stderr?: string };
    if (typeof code !== 'number') throw error;
    return { code, stdout: stdout ?? '', stderr: stderr ?? '' };
  }
}

/** Runs and expects exit 0 (the message shows stderr otherwise); returns stdout. */
async function ok(file: string, args: string[]): Promise<string> {
  const result = await run(file, args);
  expect(result.code, `${path.basename(file)} ${args.join(' ')}: ${result.stderr}`).toBe(0);
  return result.stdout;
}

let modules: string; // the five .mjs bundles
let executables: string; // the one SEA
let seaBuilt: Promise<unknown>; // its build's error, if any

beforeAll(async () => {
  // Not the helpers' tempDir: that one is removed after each test, these serve the whole file.
  modules = mkdtempSync(path.join(os.tmpdir(), 'gpucc-binaries-'));
  executables = mkdtempSync(path.join(os.tmpdir(), 'gpucc-sea-'));
  // The SEA build (seconds of postject rewriting a copy of Node) runs while the bundles are tested.
  seaBuilt = seaUnsupported
    ? Promise.resolve()
    : execFileAsync(process.execPath, [BUILD, '--out-dir', executables, '--only', SEA_BINARY]).then(
        () => undefined,
        (error: unknown) => error,
      );
  await execFileAsync(process.execPath, [BUILD, '--out-dir', modules, '--no-sea']);
}, 60_000);

afterAll(async () => {
  await seaBuilt; // still running when its test was filtered out
  for (const dir of [modules, executables]) if (dir) rmSync(dir, { recursive: true, force: true });
});

const bundle = (bin: Operand) => path.join(modules, `${bin}.mjs`);

describe('single-file bundles (dist/binaries/<bin>.mjs)', () => {
  it.each(Object.entries(OPERANDS))('%s --help names its commands', async (bin, commands) => {
    const stdout = await ok(bundle(bin as Operand), ['--help']);
    expect(stdout).toMatch(new RegExp(`^Usage: ${bin} `));
    for (const command of commands) expect(stdout).toMatch(new RegExp(`^ {2}${command} `, 'm'));
  });

  it('exit 2 on bad usage', async () => {
    const unknown = await run(bundle('vfio-manager'), ['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command 'frobnicate'/);
    const noSelection = await run(bundle('vfio-manager'), ['bind', '--host-root', os.tmpdir()]);
    expect(noSelection.code).toBe(2);
    expect(noSelection.stderr).toMatch(/ERR_GPUCC_USAGE: give --all or --device BDF/);
  });

  it('carry no simulator code', () => {
    for (const bin of Object.keys(OPERANDS) as Operand[]) {
      const text = readFileSync(bundle(bin), 'utf8');
      expect(
        SIMULATOR_ONLY.filter((name) => text.includes(name)),
        bin,
      ).toEqual([]);
    }
    // The check can fail: the simulator's own bundles have every one of those names.
    const simulator = ['gpucc-sim', 'attachment']
      .map((name) => readFileSync(path.resolve(import.meta.dirname, `../packages/sim/dist/bundle/${name}.mjs`), 'utf8'))
      .join('\n');
    expect(SIMULATOR_ONLY.filter((name) => !simulator.includes(name))).toEqual([]);
  });

  it('carry no gRPC library and no pino transport code (start-up and memory, issue 17)', () => {
    // esbuild names each bundled CommonJS module by its path, so a library's presence shows.
    for (const bin of Object.keys(OPERANDS) as Operand[]) {
      const text = readFileSync(bundle(bin), 'utf8');
      expect(
        ['node_modules/.pnpm/@grpc+grpc-js', 'node_modules/.pnpm/thread-stream@'].filter((name) => text.includes(name)),
        bin,
      ).toEqual([]);
    }
    expect(readFileSync(bundle('sandbox-device-plugin'), 'utf8')).toContain('thread-stream is left out');
  });

  it('refuse a simulated node without the simulator: exit 2, a coded error with a hint, nothing written', async () => {
    const { root } = simNode('hgx-h100-8');
    for (const bin of Object.keys(OPERANDS) as Operand[]) {
      const args = bin === 'sandbox-device-plugin' ? ['list'] : bin === 'kata-manager' ? ['write'] : ['status'];
      const result = await run(bundle(bin), [...args, '--host-root', root], { attach: false });
      expect(result.code, `${bin}: ${result.stderr}`).toBe(2);
      expect(result.stderr).toMatch(/ERR_GPUCC_SIMULATOR_NOT_ATTACHED: host root .* is a simulated node/);
      expect(result.stderr).toMatch(/hint: .*pnpm exec/);
    }
    const bind = await run(bundle('vfio-manager'), ['bind', '--all', '--host-root', root], { attach: false });
    expect(bind.code).toBe(2);
    expect(readWriteLog(root)).toEqual([]);
    expect(existsSync(path.join(root, STATE_FILE))).toBe(false);
  });

  it('bind, then every read-only command, on a simulated hgx-h100-8 node', async () => {
    const { root, node } = simNode('hgx-h100-8');
    const gpus = node.devices.filter((d) => d.vendor === 0x10de && d.class >> 8 === 0x0302);
    expect(gpus).toHaveLength(8);
    const hostRoot = ['--host-root', root];

    type VfioStatus = {
      devices: { address: string; kind: string; driver: string | null; deviceNode: string | null }[];
    };
    // Exit 1 before the bind: the GPUs are not as desired (bound to vfio-pci) yet.
    const unbound = await run(bundle('vfio-manager'), ['status', ...hostRoot, '--output', 'json']);
    expect(unbound.code).toBe(1);
    const before = JSON.parse(unbound.stdout) as VfioStatus;
    expect(before.devices.filter((d) => d.kind === 'gpu').map((d) => [d.address, d.driver])).toEqual(
      gpus.map((g) => [g.address, 'nvidia']),
    );

    // GPUs only (NVSwitches are bound by default): one kind, one spec below
    await ok(bundle('vfio-manager'), ['bind', '--all', '--no-nvswitches', ...hostRoot]);
    const after = JSON.parse(
      await ok(bundle('vfio-manager'), ['status', '--no-nvswitches', ...hostRoot, '--output', 'json']),
    ) as VfioStatus;
    expect(after.devices.filter((d) => d.kind === 'gpu').map((d) => [d.address, d.driver, d.deviceNode])).toEqual(
      gpus.map((g) => [g.address, 'vfio-pci', `/dev/vfio/${g.iommuGroup}`]),
    );

    // The CC mode comes from the node's fake gpu-admin-tools, a process of its own.
    const cc = await ok(bundle('cc-manager'), ['status', ...hostRoot]);
    expect(cc).toMatch(/^host TEE: AMD SEV-SNP$/m);
    for (const gpu of gpus)
      expect(cc).toMatch(new RegExp(`^${gpu.address} +gpu +H100 .* vfio-pci +yes +yes +off `, 'm'));

    type CdiSpec = { kind: string; devices: { name: string; containerEdits: { deviceNodes: { path: string }[] } }[] };
    const spec = JSON.parse(await ok(bundle('kata-manager'), ['generate', ...hostRoot, '--format', 'json'])) as CdiSpec;
    expect(spec.kind).toBe('nvidia.com/pgpu');
    expect(spec.devices.map((d) => [d.name, d.containerEdits.deviceNodes.map((n) => n.path)])).toEqual(
      gpus.map((g) => [`${g.iommuGroup}`, ['/dev/vfio/vfio', `/dev/vfio/${g.iommuGroup}`]]),
    );

    const plugin = await ok(bundle('sandbox-device-plugin'), ['list', ...hostRoot]);
    for (const gpu of gpus) {
      expect(plugin).toMatch(
        new RegExp(`^nvidia\\.com/pgpu +${gpu.iommuGroup} +Healthy +${gpu.numaNode} +${gpu.address} `, 'm'),
      );
    }

    // gpucc reads what the others left: the GPUs on VFIO, and vfio-manager's record of them.
    type Status = { devices: { address: string; driver: string; vfioNodes: string[]; vfioManager: unknown }[] };
    const gpucc = JSON.parse(await ok(bundle('gpucc'), ['status', ...hostRoot, '--output', 'json'])) as Status;
    for (const gpu of gpus)
      expect(gpucc.devices.find((d) => d.address === gpu.address)).toMatchObject({
        driver: 'vfio-pci',
        vfioNodes: [`/dev/vfio/${gpu.iommuGroup}`],
        vfioManager: { phase: 'bound', targetDriver: 'vfio-pci' },
      });
  });
});

describe(`a single executable (dist/binaries/${SEA_BINARY})`, () => {
  it('runs --help; refuses a simulated node; reads the same tree as a plain host (its fake CC tool included)', async (ctx) => {
    if (seaUnsupported) ctx.skip(`skipped: ${seaUnsupported}`);
    const buildError = await seaBuilt;
    if (buildError) throw buildError;
    const executable = path.join(executables, SEA_BINARY);
    expect(await ok(executable, ['--help'])).toMatch(/^Usage: cc-manager [\s\S]*^ {2}status /m);
    // Both ways it runs, a command by hand and a daemon under the daemons' Node options, it starts from
    // a code cache made for it, and says nothing on stderr (Node's own SEA cache warned under any flag).
    for (const env of [{}, { NODE_OPTIONS: DAEMON_NODE_OPTIONS }]) {
      const version = await run(executable, ['--version'], { env });
      expect(version).toMatchObject({ code: 0, stderr: '' });
    }

    const { root, node } = simNode('hgx-h100-8');
    // It carries no simulator and cannot be given one (a single executable takes no --import).
    const refused = await run(executable, ['status', '--host-root', root]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/ERR_GPUCC_SIMULATOR_NOT_ATTACHED/);
    // A copy without the marker is a plain host: status only reads it, and runs the tool it is given
    // (the node's fake, which answers for the node it lives in).
    const plain = `${root}-plain`;
    cpSync(root, plain, { recursive: true, verbatimSymlinks: true });
    rmSync(path.join(plain, SIMULATED_NODE_MARKER));
    const tool = ['--gpu-admin-tools', simulatorAttachment.tools(root).gpuAdminTools];
    type CcStatus = { tee: string; devices: { address: string; kind: string; ccMode: string | null }[] };
    const status = JSON.parse(
      await ok(executable, ['status', '--host-root', plain, ...tool, '--output', 'json']),
    ) as CcStatus;
    expect(status.tee).toBe('sev-snp');
    expect(status.devices.filter((d) => d.kind === 'gpu').map((d) => [d.address, d.ccMode])).toEqual(
      node.devices.filter((d) => d.ccName?.startsWith('H100')).map((d) => [d.address, 'off']),
    );
  }, 90_000);
});
