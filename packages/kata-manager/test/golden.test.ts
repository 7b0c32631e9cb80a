// Golden specs: every simulated profile, as a legacy and as an iommufd host, bound with the
// vfio-manager engine, written by `write`. Regenerate with
//   GPUCC_UPDATE_GOLDEN=1 node_modules/.bin/vitest run packages/kata-manager/test/golden.test.ts
// and review the diff: the goldens are the contract with Kata and the device plugin.
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { NameAliases } from '@gpucc/hal';
import type { BindOptions, NodeOptions } from '@gpucc/testbed/fixtures';
import { boundNode } from '@gpucc/testbed/vitest';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { generate, write } from '../src/commands.js';
import { specProblems } from '../src/validate.js';

const GOLDEN = path.join(import.meta.dirname, 'golden');
const UPDATE = process.env.GPUCC_UPDATE_GOLDEN === '1';

interface Case {
  name: string;
  profile: string;
  node?: NodeOptions;
  bind?: BindOptions;
  aliases?: NameAliases;
  /** The files `write` must produce: reviewed by hand, so a golden update cannot silently drop one. */
  files: string[];
}

const PGPU = 'nvidia.com-pgpu_gpucc.yaml';
const NVSWITCH = 'nvidia.com-nvswitch_gpucc.yaml';
const legacy = { iommufd: false };
const iommufd = { iommufd: true };

const CASES: Case[] = [
  { name: 'h100-pcie-1.legacy', profile: 'h100-pcie-1', node: legacy, files: [PGPU] },
  { name: 'h100-pcie-1.iommufd', profile: 'h100-pcie-1', node: iommufd, files: [PGPU] },
  { name: 'hgx-h100-8.legacy', profile: 'hgx-h100-8', node: legacy, files: [NVSWITCH, PGPU] },
  { name: 'hgx-h100-8.iommufd', profile: 'hgx-h100-8', node: iommufd, files: [NVSWITCH, PGPU] },
  {
    name: 'hgx-h100-8.legacy.per-model',
    profile: 'hgx-h100-8',
    node: legacy,
    aliases: { gpuAlias: '', nvswitchAlias: '' },
    files: ['nvidia.com-GH100_H100_NVSWITCH_gpucc.yaml', 'nvidia.com-GH100_H100_SXM5_80GB_gpucc.yaml'],
  },
  {
    name: 'hgx-h100-8.legacy.aliases',
    profile: 'hgx-h100-8',
    node: legacy,
    aliases: { gpuAlias: 'h100', nvswitchAlias: 'nvlink-switch' },
    files: ['nvidia.com-h100_gpucc.yaml', 'nvidia.com-nvlink-switch_gpucc.yaml'],
  },
  { name: 'hgx-b200-8.legacy', profile: 'hgx-b200-8', node: legacy, files: [PGPU] },
  { name: 'hgx-b200-8.iommufd', profile: 'hgx-b200-8', node: iommufd, files: [PGPU] },
  // The VGA card's four functions share group 12: one device with all their nodes. The H100 shares
  // group 30 with a foreign NIC, so vfio-manager leaves it on nvidia and it is not published.
  {
    name: 'workstation-mixed.legacy',
    profile: 'workstation-mixed',
    node: legacy,
    bind: { expectOk: false }, // group 30 refused: the foreign NIC
    files: [PGPU],
  },
  {
    name: 'workstation-mixed.iommufd',
    profile: 'workstation-mixed',
    node: iommufd,
    bind: { expectOk: false },
    files: [PGPU],
  },
  {
    name: 'workstation-mixed.legacy.foreign-allowed',
    profile: 'workstation-mixed',
    node: legacy,
    bind: { allowForeignGroupMembers: true },
    files: [PGPU],
  },
  {
    name: 'workstation-mixed.iommufd.per-model',
    profile: 'workstation-mixed',
    node: iommufd,
    bind: { allowForeignGroupMembers: true },
    aliases: { gpuAlias: '' },
    files: ['nvidia.com-GH100_H100_PCIE_gpucc.yaml', 'nvidia.com-TU104GL_QUADRO_RTX_4000_gpucc.yaml'],
  },
  { name: 'iommufd-h200-2.iommufd', profile: 'iommufd-h200-2', files: [PGPU] },
  { name: 'iommufd-h200-2.legacy', profile: 'iommufd-h200-2', node: legacy, files: [PGPU] },
  // The Grace GPU binds to the nvgrace_gpu_vfio_pci variant driver, which counts as VFIO.
  { name: 'grace-gh200-1.legacy', profile: 'grace-gh200-1', node: legacy, files: [PGPU] },
  { name: 'grace-gh200-1.iommufd', profile: 'grace-gh200-1', node: iommufd, files: [PGPU] },
  // IOMMU off: VFIO cannot take the GPU, so there is no device and no file (an empty spec is invalid).
  { name: 'no-iommu.legacy', profile: 'no-iommu', node: legacy, bind: { expectOk: false }, files: [] },
  { name: 'no-iommu.iommufd', profile: 'no-iommu', node: iommufd, bind: { expectOk: false }, files: [] },
  {
    name: 'scale-12x1.legacy',
    profile: 'scale',
    node: { ...legacy, gpus: 12, functionsPerCard: 1 },
    files: [PGPU],
  },
  {
    name: 'scale-3x4.iommufd',
    profile: 'scale',
    node: { ...iommufd, gpus: 3, functionsPerCard: 4 },
    files: [PGPU],
  },
];

function goldenFiles(name: string): string[] {
  try {
    return readdirSync(path.join(GOLDEN, name)).sort();
  } catch {
    return [];
  }
}

describe('golden specs', () => {
  it.each(CASES)('$name', async (c) => {
    const { root, sysfs } = await boundNode(c.profile, { nvswitches: true, ...c.node, ...c.bind });
    const aliases = c.aliases ?? {};
    const result = await write(sysfs, { aliases, cdiDir: '/var/run/cdi', dryRun: false });
    expect(result.report!.errors).toEqual([]);
    const dir = path.join(root, 'var/run/cdi');
    const files = safeList(dir);
    expect(files).toEqual(c.files);

    if (UPDATE) {
      rmSync(path.join(GOLDEN, c.name), { recursive: true, force: true });
      if (files.length) mkdirSync(path.join(GOLDEN, c.name), { recursive: true });
      for (const f of files) writeFileSync(path.join(GOLDEN, c.name, f), readFileSync(path.join(dir, f)));
    }
    expect(goldenFiles(c.name)).toEqual(c.files);
    for (const f of files) {
      const written = readFileSync(path.join(dir, f), 'utf8');
      expect(written, `${c.name}/${f}`).toBe(readFileSync(path.join(GOLDEN, c.name, f), 'utf8'));
      expect(statSync(path.join(dir, f)).mode & 0o777).toBe(0o644);
      const spec = parse(written);
      expect(specProblems(spec)).toEqual([]);
      // The spec is true: every node it names exists on the host.
      for (const device of spec.devices)
        for (const node of device.containerEdits.deviceNodes) expect(sysfs.exists(node.path), node.path).toBe(true);
    }
    // `generate` prints the same bytes that `write` writes.
    const generated = generate(sysfs, { aliases });
    expect(generated.specs.map((s) => s.text).join('---\n')).toBe(
      files.map((f) => readFileSync(path.join(dir, f), 'utf8')).join('---\n'),
    );
  });
});

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}
