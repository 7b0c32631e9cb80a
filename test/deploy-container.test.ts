// deploy/container: the Containerfile read statically (no container engine runs here or in CI), checked
// against the operands, the kustomize base, deploy/container/README.md and /.dockerignore; and each
// image's command line (ENTRYPOINT + CMD with the image's ENV) run against a simulated node, with the
// bundles its COPY takes built fresh by scripts/build-binaries.mjs.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { DEFAULT_GPU_ADMIN_TOOLS } from '@gpucc/cc-manager';
import { envVarFor } from '@gpucc/daemon';
import { localFs } from '@gpucc/hal';
import { DEFAULT_CDI_DIR } from '@gpucc/kata-manager';
import { ATTACH_SIMULATOR } from '@gpucc/testbed';
import { simNode, tempDir } from '@gpucc/testbed/vitest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, parse as parseYaml } from 'yaml';

const ROOT = path.resolve(import.meta.dirname, '..');
const CONTAINERFILE = path.join(ROOT, 'deploy/container/Containerfile');
const README = path.join(ROOT, 'deploy/container/README.md');
const BASE = path.join(ROOT, 'deploy/kubernetes/base');
const OPERANDS = ['vfio-manager', 'cc-manager', 'kata-manager', 'sandbox-device-plugin'] as const;
type Operand = (typeof OPERANDS)[number];
/** What `pnpm build:binaries` writes; not in the repository, so a COPY of it cannot be checked by existence. */
const BUILD_OUTPUTS = new Set(OPERANDS.map((o) => `dist/binaries/${o}.mjs`));
/** Where Debian's `pci.ids` package installs the file. */
const DEBIAN_PCI_IDS = '/usr/share/misc/pci.ids';

// ---- a small Containerfile reader ------------------------------------------------------------------

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}
interface Stage {
  name: string | undefined;
  /** The FROM argument with global ARG defaults substituted. */
  from: string;
  instructions: Instruction[];
}

/** Instructions of a Dockerfile: continuation lines joined, comments (also inside continuations) dropped. */
function instructionsOf(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending: { text: string; line: number } | undefined;
  text.split('\n').forEach((raw, index) => {
    const trimmed = raw.trim();
    if (trimmed.startsWith('#') || (trimmed === '' && pending === undefined)) return;
    const continued = trimmed.endsWith('\\');
    const part = continued ? trimmed.slice(0, -1).trim() : trimmed;
    pending = pending ? { text: `${pending.text} ${part}`, line: pending.line } : { text: part, line: index + 1 };
    if (continued) return;
    const [, keyword = '', args = ''] = /^(\S+)\s*(.*)$/.exec(pending.text) ?? [];
    out.push({ keyword: keyword.toUpperCase(), args, line: pending.line });
    pending = undefined;
  });
  return out;
}

function substitute(text: string, vars: ReadonlyMap<string, string>): string {
  return text.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string | undefined, b: string | undefined) => {
    const name = (a ?? b)!;
    const value = vars.get(name);
    if (value === undefined) throw new Error(`\${${name}} has no default`);
    return value;
  });
}

/** `KEY=VALUE KEY2="VALUE 2"` pairs (ENV, LABEL, ARG). */
function pairsOf(args: string): Map<string, string> {
  const pairs = new Map<string, string>();
  for (const m of args.matchAll(/([\w.-]+)=(?:"((?:[^"\\]|\\.)*)"|(\S*))/g)) pairs.set(m[1]!, m[2] ?? m[3] ?? '');
  return pairs;
}

function parseContainerfile(text: string) {
  const globalArgs = new Map<string, string>();
  const stages: Stage[] = [];
  for (const instruction of instructionsOf(text)) {
    if (instruction.keyword === 'FROM') {
      const [image, as, name] = instruction.args.split(/\s+/);
      expect(as === undefined || /^as$/i.test(as), `line ${instruction.line}`).toBe(true);
      stages.push({ name, from: substitute(image!, globalArgs), instructions: [] });
    } else if (stages.length === 0) {
      expect(instruction.keyword, `line ${instruction.line}: only ARG before the first FROM`).toBe('ARG');
      const [key, value = ''] = instruction.args.split('=', 2) as [string, string?];
      globalArgs.set(key, value);
    } else {
      stages.at(-1)!.instructions.push(instruction);
    }
  }
  return { globalArgs, stages };
}

const containerfile = readFileSync(CONTAINERFILE, 'utf8');
const { globalArgs, stages } = parseContainerfile(containerfile);
const stageNamed = (name: string) => stages.find((s) => s.name === name);

/** A stage and the stages of this file it is built FROM, the stage itself last. */
function chainOf(stage: Stage): Stage[] {
  const parent = stages.slice(0, stages.indexOf(stage)).find((s) => s.name === stage.from);
  return parent ? [...chainOf(parent), stage] : [stage];
}

interface Copy {
  from: string | undefined;
  sources: string[];
  dest: string;
  line: number;
}
function copiesOf(stage: Stage): Copy[] {
  return stage.instructions
    .filter((i) => i.keyword === 'COPY' || i.keyword === 'ADD')
    .map((i) => {
      const words = i.args.split(/\s+/);
      const flags = words.filter((w) => w.startsWith('--'));
      const paths = words.filter((w) => !w.startsWith('--'));
      const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
      expect(i.keyword === 'ADD' || flags.every((f) => f.startsWith('--from=')), `line ${i.line}: ${flags}`).toBe(true);
      return { from, sources: paths.slice(0, -1), dest: paths.at(-1)!, line: i.line };
    });
}

/** What an operand's image ends up with: its stages' ENV, LABEL, RUN, COPY, and the last USER/ENTRYPOINT/CMD. */
function imageOf(operand: Operand) {
  const stage = stageNamed(operand);
  if (!stage) throw new Error(`no target ${operand}`);
  const chain = chainOf(stage);
  const all = chain.flatMap((s) => s.instructions);
  const last = (keyword: string) => all.filter((i) => i.keyword === keyword).at(-1);
  const json = (keyword: string) => {
    const i = last(keyword);
    return i === undefined ? undefined : (JSON.parse(i.args) as string[]);
  };
  const env = new Map<string, string>();
  const labels = new Map<string, string>();
  for (const i of all) {
    if (i.keyword === 'ENV') for (const [k, v] of pairsOf(i.args)) env.set(k, v);
    if (i.keyword === 'LABEL') for (const [k, v] of pairsOf(i.args)) labels.set(k, v);
  }
  return {
    stage,
    chain,
    base: chain[0]!.from,
    env,
    labels,
    runs: all.filter((i) => i.keyword === 'RUN').map((i) => i.args),
    copies: chain.flatMap(copiesOf),
    user: stage.instructions.filter((i) => i.keyword === 'USER').at(-1)?.args,
    entrypoint: json('ENTRYPOINT'),
    cmd: json('CMD'),
    healthcheck: last('HEALTHCHECK'),
  };
}

/** Debian packages an image's RUN lines install with apt-get. */
function aptPackages(runs: string[]): string[] {
  return runs.flatMap((run) =>
    [...run.matchAll(/apt-get install ((?:-\S+\s+)*)([^&;|]+)/g)].flatMap((m) => m[2]!.trim().split(/\s+/)),
  );
}

// ---- the other files it must agree with --------------------------------------------------------------

// biome-ignore lint/suspicious/noExplicitAny: walking plain manifests
function daemonSetOf(operand: Operand): any {
  return parseYaml(readFileSync(path.join(BASE, `${operand}.yaml`), 'utf8'));
}

function daemonSetImages(): string[] {
  return readdirSync(BASE)
    .filter((f) => f.endsWith('.yaml'))
    .flatMap((f) => parseAllDocuments(readFileSync(path.join(BASE, f), 'utf8')).map((d) => d.toJSON()))
    .flatMap((doc) =>
      doc?.kind === 'DaemonSet'
        ? (doc.spec.template.spec.containers as Array<{ image: string }>).map((c) => c.image)
        : [],
    );
}

interface UserRow {
  image: string;
  imageUser: string;
  runAsUser: string;
  why: string;
}
/** The "## Users" table of deploy/container/README.md. */
function readmeUsers(): Map<string, UserRow> {
  const section =
    readFileSync(README, 'utf8')
      .split(/^## Users$/m)[1]
      ?.split(/^## /m)[0] ?? '';
  const rows = new Map<string, UserRow>();
  for (const line of section.split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    if (cells.length < 6 || !cells[1]!.startsWith('`')) continue;
    const [, image, imageUser, runAsUser, why] = cells as [string, string, string, string, string];
    rows.set(image.replaceAll('`', ''), {
      image: image.replaceAll('`', ''),
      imageUser: /`([^`]+)`/.exec(imageUser)?.[1] ?? imageUser,
      runAsUser: /^`?(\w+)/.exec(runAsUser)?.[1] ?? runAsUser,
      why,
    });
  }
  return rows;
}

const uidOf = (user: string) => Number(user.split(':')[0]);
/** How a Dockerfile refers to a build argument: `${NAME}`. */
const buildArg = (name: string) => `\${${name}}`;

/** The operands whose source reads pci.ids (hal's loadPciIds): their images must carry one. */
function operandsReadingPciIds(): Operand[] {
  const readsIn = (dir: string): boolean =>
    readdirSync(dir, { withFileTypes: true }).some((e) =>
      e.isDirectory()
        ? readsIn(path.join(dir, e.name))
        : e.name.endsWith('.ts') && /\bloadPciIds\(/.test(readFileSync(path.join(dir, e.name), 'utf8')),
    );
  return OPERANDS.filter((o) => readsIn(path.join(ROOT, 'packages', o, 'src')));
}

// ---- the checks ------------------------------------------------------------------------------------------

describe('deploy/container/Containerfile', () => {
  it('has a target per operand, and one for every DaemonSet image of the kustomize base, tagged alike', () => {
    for (const operand of OPERANDS) expect(stageNamed(operand), operand).toBeDefined();
    const images = daemonSetImages();
    expect(images).toHaveLength(OPERANDS.length);
    for (const image of images) {
      const name = /^gpucc\/([a-z0-9-]+)$/.exec(image)?.[1];
      expect(name, image).toBeDefined();
      expect(stageNamed(name!), `target for ${image}`).toBeDefined();
    }
    // the version label and the README's tags are the kustomization's tag
    const kustomization = parseYaml(readFileSync(path.join(BASE, 'kustomization.yaml'), 'utf8')) as {
      images: Array<{ name: string; newTag: string }>;
    };
    const readme = readFileSync(README, 'utf8');
    for (const { name, newTag } of kustomization.images) {
      expect(newTag).toBe(globalArgs.get('VERSION'));
      const operand = name.replace(/^gpucc\//, '');
      expect(readme).toMatch(new RegExp(`--target ${operand} +-t ${name}:${newTag} \\.`));
    }
  });

  it('builds every operand on Node 24, pinned by tag (a digest may be added)', () => {
    const node = globalArgs.get('NODE_IMAGE')!;
    expect(node).toMatch(/^docker\.io\/library\/node:24-[a-z]+-slim(@sha256:[0-9a-f]{64})?$/);
    for (const operand of OPERANDS) expect(imageOf(operand).base, operand).toBe(node);
    // no stage pulls an unpinned or another Node image
    for (const stage of stages) expect(stage.from, stage.name).not.toMatch(/:latest$|^node:|library\/node:(?!24-)/);
  });

  it('a numeric USER in every image, non-root unless the README says why, consistent with the DaemonSet', () => {
    const rows = readmeUsers();
    expect([...rows.keys()].sort()).toEqual([...OPERANDS].sort());
    for (const operand of OPERANDS) {
      const { user } = imageOf(operand);
      expect(user, `${operand}: USER in its own stage`).toMatch(/^\d+(:\d+)?$/);
      const uid = uidOf(user!);
      const row = rows.get(operand)!;
      expect(uidOf(row.imageUser), `${operand}: README says ${row.imageUser}`).toBe(uid);
      if (uid === 0) expect(row.why.length, `${operand}: root needs a reason in the README`).toBeGreaterThan(40);
      else expect(uid).toBeGreaterThanOrEqual(1001); // not the node user (1000), nor a system account

      // The pod runs as runAsUser when set, else as the image's user; the README says which.
      const container = daemonSetOf(operand).spec.template.spec.containers[0];
      const sc = container.securityContext;
      expect(String(sc.runAsUser ?? 'none'), `${operand}: README's DaemonSet runAsUser`).toBe(row.runAsUser);
      const podUid = sc.runAsUser ?? uid;
      // Only the sysfs writers may be root with capabilities; the others get uid 0 with none at all.
      if (operand === 'vfio-manager' || operand === 'cc-manager') expect(podUid, operand).toBe(0);
      else if (podUid === 0) expect(sc.capabilities).toEqual({ drop: ['ALL'] });
    }
  });

  it('copies only stages and the bundles of pnpm build:binaries; /.dockerignore keeps the context to those', () => {
    const contextSources = new Set<string>();
    stages.forEach((stage, index) => {
      const earlier = new Set(stages.slice(0, index).map((s) => s.name));
      for (const copy of copiesOf(stage)) {
        if (copy.from !== undefined) {
          expect(earlier.has(copy.from), `line ${copy.line}: --from=${copy.from} is an earlier stage`).toBe(true);
          continue;
        }
        for (const source of copy.sources) {
          if (/^https:\/\//.test(source)) continue; // ADD of a URL: the gpu-admin-tools fetch
          expect(source, `line ${copy.line}: a plain path`).toMatch(/^[\w./-]+$/);
          expect(
            BUILD_OUTPUTS.has(source) || existsSync(path.join(ROOT, source)),
            `line ${copy.line}: ${source} exists or is built by pnpm build:binaries`,
          ).toBe(true);
          contextSources.add(source);
        }
      }
    });
    // each operand copies its own bundle, and only its own
    for (const operand of OPERANDS) {
      const bundles = imageOf(operand)
        .copies.filter((c) => c.from === undefined)
        .flatMap((c) => c.sources);
      expect(bundles, operand).toEqual([`dist/binaries/${operand}.mjs`]);
    }

    const patterns = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    expect(patterns[0], 'everything is excluded first').toBe('*');
    const included = patterns.slice(1);
    expect(included.every((p) => p.startsWith('!'))).toBe(true);
    expect(new Set(included.map((p) => p.slice(1)))).toEqual(contextSources);
    expect(existsSync(path.join(ROOT, '.containerignore')), 'podman would read it instead').toBe(false);
  });

  it('runs the operand’s bundle: ENTRYPOINT node /opt/gpucc/<operand>.mjs, CMD the DaemonSet’s args', () => {
    for (const operand of OPERANDS) {
      const image = imageOf(operand);
      expect(image.entrypoint).toEqual(['node', `/opt/gpucc/${operand}.mjs`]);
      expect(image.copies).toContainEqual(
        expect.objectContaining({
          from: undefined,
          sources: [`dist/binaries/${operand}.mjs`],
          dest: image.entrypoint![1],
        }),
      );
      const container = daemonSetOf(operand).spec.template.spec.containers[0];
      expect(container.command, `${operand}: the DaemonSet keeps the ENTRYPOINT`).toBeUndefined();
      expect(image.cmd).toEqual(container.args);
      // the host root the image assumes is where the DaemonSet mounts the host
      const env = Object.fromEntries(container.env.map((e: { name: string; value?: string }) => [e.name, e.value]));
      expect(image.env.get('GPUCC_HOST_ROOT')).toBe(env.GPUCC_HOST_ROOT);
      // Kubernetes ignores HEALTHCHECK; the DaemonSets probe /healthz and /readyz
      expect(image.healthcheck, operand).toBeUndefined();
    }
  });

  it('kata-manager writes its CDI specs into a host directory its DaemonSet mounts', () => {
    const container = daemonSetOf('kata-manager').spec.template.spec.containers[0];
    const env = Object.fromEntries(container.env.map((e: { name: string; value?: string }) => [e.name, e.value]));
    const cdiDir = path.posix.join(env.GPUCC_HOST_ROOT, env[envVarFor('--cdi-dir')] ?? DEFAULT_CDI_DIR);
    const writable = (container.volumeMounts as Array<{ mountPath: string; readOnly?: boolean }>).filter(
      (m) => !m.readOnly,
    );
    expect(writable.map((m) => m.mountPath)).toContain(cdiDir);
  });

  it('carries OCI labels', () => {
    for (const operand of OPERANDS) {
      const { labels } = imageOf(operand);
      for (const key of ['title', 'description', 'version', 'revision', 'source', 'vendor', 'base.name'])
        expect(labels.has(`org.opencontainers.image.${key}`), `${operand}: ${key}`).toBe(true);
      expect(labels.get('org.opencontainers.image.title')).toContain(operand);
      expect(labels.get('org.opencontainers.image.version')).toBe(buildArg('VERSION'));
    }
  });

  it('pci.ids in every image that names devices, with GPUCC_PCI_IDS (= --pci-ids) pointing at it', () => {
    const readers = operandsReadingPciIds();
    expect(readers.sort()).toEqual(['kata-manager', 'sandbox-device-plugin']);
    expect(envVarFor('--pci-ids')).toBe('GPUCC_PCI_IDS');
    for (const operand of readers) {
      const image = imageOf(operand);
      expect(aptPackages(image.runs), operand).toContain('pci.ids');
      expect(image.env.get('GPUCC_PCI_IDS'), operand).toBe(DEBIAN_PCI_IDS);
      // the same rule for both, so their names agree: one shared stage
      expect(image.chain.map((s) => s.name)).toContain('names');
    }
    for (const operand of OPERANDS.filter((o) => !readers.includes(o))) {
      expect(imageOf(operand).env.has('GPUCC_PCI_IDS'), operand).toBe(false);
    }
  });

  it('cc-manager carries python3 and gpu-admin-tools where cc-manager looks for them, fetched at a pinned ref', () => {
    const image = imageOf('cc-manager');
    expect(aptPackages(image.runs)).toContain('python3');
    const tools = image.copies.find((c) => c.from === 'gpu-admin-tools');
    expect(tools?.dest).toBe(`${path.posix.dirname(DEFAULT_GPU_ADMIN_TOOLS)}/`);
    expect(image.runs.join('\n')).toContain(`chmod 0755 ${DEFAULT_GPU_ADMIN_TOOLS}`);

    expect(globalArgs.get('GPU_ADMIN_TOOLS_REF')).toMatch(/^(v\d{4}\.\d{2}\.\d{2}|[0-9a-f]{40})$/);
    const fetch = stageNamed('gpu-admin-tools-fetch')!;
    const add = fetch.instructions.find((i) => i.keyword === 'ADD')!;
    expect(add.args).toContain(
      `https://github.com/NVIDIA/gpu-admin-tools/archive/${buildArg('GPU_ADMIN_TOOLS_REF')}.tar.gz`,
    );
    expect(fetch.instructions.map((i) => i.args).join('\n')).toMatch(/sha256sum -c/);
    expect(stageNamed('gpu-admin-tools')?.from).toBe('scratch'); // replaceable by --build-context
    // after the other targets, so that not even the classic builder (every stage before the target) fetches it
    const fetchIndex = stages.indexOf(fetch);
    for (const operand of OPERANDS.filter((o) => o !== 'cc-manager'))
      expect(stages.indexOf(stageNamed(operand)!), operand).toBeLessThan(fetchIndex);
    // no other image gets the tool or Python
    for (const operand of OPERANDS.filter((o) => o !== 'cc-manager')) {
      const other = imageOf(operand);
      expect(
        other.copies.some((c) => c.from === 'gpu-admin-tools'),
        operand,
      ).toBe(false);
      expect(aptPackages(other.runs), operand).not.toContain('python3');
    }
    expect(aptPackages(imageOf('vfio-manager').runs)).toContain('kmod');
  });
});

// ---- the images' command lines, with the bundles of dist/binaries -----------------------------------

const execFileAsync = promisify(execFile);
/**
 * The files the images' COPY takes from dist/binaries, built fresh for this test (never a stale
 * dist/binaries of an older checkout) by the same script as `pnpm build:binaries`, without executables.
 */
let bundles = '';
beforeAll(async () => {
  bundles = mkdtempSync(path.join(os.tmpdir(), 'gpucc-image-bundles-'));
  const build = path.join(ROOT, 'scripts/build-binaries.mjs');
  await execFileAsync(process.execPath, [build, '--no-sea', '--out-dir', bundles, '--only', OPERANDS.join(',')]);
}, 120_000);
afterAll(() => rmSync(bundles, { recursive: true, force: true }));

/**
 * An image's command line on this machine: the ENTRYPOINT's bundle replaced by the file its COPY
 * takes from the context, the image's ENV (a value naming a file of the image replaced by its
 * stand-in in `files`), then the DaemonSet's env, then the test's overrides (the simulated node as
 * host root, a free port). The image carries no simulator: it is attached from the repository.
 */
function commandLine(
  operand: Operand,
  args: string[] | undefined,
  overrides: Record<string, string>,
  files: Record<string, string> = {},
) {
  const image = imageOf(operand);
  const [node, bundle, ...rest] = image.entrypoint!;
  expect(node).toBe('node');
  const copy = image.copies.find((c) => c.dest === bundle)!;
  const container = daemonSetOf(operand).spec.template.spec.containers[0];
  const podEnv = Object.fromEntries(
    (container.env as Array<{ name: string; value?: string }>).flatMap((e) =>
      e.value === undefined ? [] : [[e.name, e.value]],
    ),
  );
  return {
    file: process.execPath,
    argv: [
      '--import',
      ATTACH_SIMULATOR,
      path.join(bundles, path.basename(copy.sources[0]!)),
      ...rest,
      ...(args ?? image.cmd!),
    ],
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      ...Object.fromEntries([...image.env].map(([k, v]) => [k, files[v] ?? v])),
      ...podEnv,
      ...overrides,
    },
  };
}

function start(line: ReturnType<typeof commandLine>) {
  const child: ChildProcess = spawn(line.file, line.argv, { env: line.env, stdio: ['ignore', 'pipe', 'pipe'] });
  const events: Array<Record<string, unknown>> = [];
  let stderr = '';
  child.stderr!.on('data', (d) => {
    stderr += String(d);
  });
  createInterface({ input: child.stdout! }).on('line', (l) => {
    try {
      events.push(JSON.parse(l));
    } catch {
      // not a log line
    }
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, events, exited, stderr: () => stderr };
}

async function until(test: () => boolean, what: string, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`not reached in time: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('the images’ command lines on a simulated node (the bundles their COPY takes)', () => {
  it('vfio-manager run binds, kata-manager run writes specs named from the image’s pci.ids, the plugin lists the same', async () => {
    const { root } = simNode('hgx-h100-8');
    // a host root with no pci.ids of its own: names must come from the image's file (a stand-in here,
    // found through the image's GPUCC_PCI_IDS)
    localFs.removeSync(path.join(root, 'usr/share/misc/pci.ids'));
    const standIn = path.join(tempDir('gpucc-image-'), 'pci.ids');
    localFs.writeFileSync(standIn, '10de  NVIDIA Corporation\n\t2330  GH100 [From The Image]\n');
    const host = { GPUCC_HOST_ROOT: root, GPUCC_METRICS_ADDRESS: '127.0.0.1:0', GPUCC_LOG_LEVEL: 'info' };
    const perModel = { ...host, P_GPU_ALIAS: '' };
    const imageFiles = { [DEBIAN_PCI_IDS]: standIn };

    // vfio-manager: the image's CMD (run) with the DaemonSet's GPUCC_DESIRED=vfio binds every GPU
    const vfio = start(commandLine('vfio-manager', undefined, host));
    await until(() => vfio.events.some((e) => e.event === 'reconcile.done'), `vfio-manager bound`);
    vfio.child.kill('SIGTERM');
    expect(await vfio.exited, vfio.stderr()).toBe(0);

    // cc-manager: the image reads CC modes on this node (the node's fake tool stands in for the image's)
    const cc = commandLine('cc-manager', ['status', '--output', 'json'], host);
    const status = JSON.parse((await execFileAsync(cc.file, cc.argv, { env: cc.env })).stdout) as {
      devices: Array<{ kind: string; ccMode: string | null }>;
    };
    expect(status.devices.filter((d) => d.kind === 'gpu').map((d) => d.ccMode)).toEqual(Array(8).fill('off'));

    // kata-manager: run (the CMD) with the DaemonSet's GPUCC_CDI_DIR writes into the mounted /run/cdi
    const kata = start(commandLine('kata-manager', undefined, perModel, imageFiles));
    const spec = path.join(root, 'run/cdi/nvidia.com-GH100_FROM_THE_IMAGE.yaml');
    await until(() => existsSync(spec), `kata-manager wrote ${spec}`);
    kata.child.kill('SIGTERM');
    expect(await kata.exited, kata.stderr()).toBe(0);
    expect(readFileSync(spec, 'utf8')).toMatch(/^kind: nvidia\.com\/GH100_FROM_THE_IMAGE$/m);

    // the device plugin names the same resource from the same file
    const plugin = commandLine('sandbox-device-plugin', ['list', '--output', 'json'], perModel, imageFiles);
    const list = JSON.parse((await execFileAsync(plugin.file, plugin.argv, { env: plugin.env })).stdout) as {
      resources: Array<{ resourceName: string; devices: unknown[] }>;
    };
    expect(list.resources.map((r) => [r.resourceName, r.devices.length])).toEqual([
      ['nvidia.com/GH100_FROM_THE_IMAGE', 8],
    ]);
  }, 90_000);
});
