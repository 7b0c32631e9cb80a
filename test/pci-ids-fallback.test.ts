// --pci-ids / GPUCC_PCI_IDS across the two operands that name devices per model: on a simulated node
// whose host root has no pci.ids, both take their names from the fallback file (a file of the
// container, as the images set it), so the plugin's resources still equal kata-manager's CDI kinds;
// the host's own pci.ids wins when it has one; a missing file stops both with exit 2.
import path from 'node:path';
import { localFs } from '@gpucc/hal';
import { main as kataMain } from '@gpucc/kata-manager';
import { main as pluginMain } from '@gpucc/sandbox-device-plugin';
import { boundNode, type CliMain, captureCli, tempDir } from '@gpucc/testbed/vitest';
import { describe, expect, it } from 'vitest';

/** Runs a binary in-process with `env` (undefined removes a variable); captures stdout and stderr. */
async function run(main: CliMain, name: string, args: string[], env: Record<string, string | undefined>) {
  const saved = { ...process.env };
  for (const [key, value] of Object.entries({ P_GPU_ALIAS: undefined, NVSWITCH_ALIAS: undefined, ...env })) {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
  try {
    return await captureCli(main, name, args);
  } finally {
    process.env = saved;
  }
}

const QUIET = ['--log-level', 'silent'];

/** The GPU kinds kata-manager would write, and the GPU resources the device plugin would advertise. */
async function names(root: string, env: Record<string, string | undefined>, extra: string[] = []) {
  const kata = await run(
    kataMain,
    'kata-manager',
    ['generate', '--format', 'json', '--host-root', root, ...QUIET, ...extra],
    env,
  );
  const plugin = await run(
    pluginMain,
    'sandbox-device-plugin',
    ['list', '--output', 'json', '--host-root', root, ...QUIET, ...extra],
    env,
  );
  expect(kata.code, kata.err).toBe(0);
  expect(plugin.code, plugin.err).toBe(0);
  const specs = JSON.parse(kata.out) as { kind: string } | Array<{ kind: string }>;
  const kinds = (Array.isArray(specs) ? specs : [specs]).map((s) => s.kind).sort();
  const resources = (JSON.parse(plugin.out) as { resources: Array<{ resourceName: string }> }).resources
    .map((r) => r.resourceName)
    .sort();
  return { kinds, resources };
}

async function nodeWithoutPciIds() {
  const { root } = await boundNode('hgx-h100-8', { nvswitches: false });
  localFs.removeSync(path.join(root, 'usr/share/misc/pci.ids'));
  const file = path.join(tempDir('gpucc-image-'), 'pci.ids');
  localFs.writeFileSync(file, '10de  NVIDIA Corporation\n\t2330  GH100 [From The Image]\n');
  return { root, file };
}

describe('pci.ids fallback outside the host root (--pci-ids, GPUCC_PCI_IDS)', () => {
  it('a host root without pci.ids: both operands name GPUs from GPUCC_PCI_IDS, and agree', async () => {
    const { root, file } = await nodeWithoutPciIds();
    const withImage = await names(root, { P_GPU_ALIAS: '', GPUCC_PCI_IDS: file });
    expect(withImage.kinds).toEqual(['nvidia.com/GH100_FROM_THE_IMAGE']);
    expect(withImage.resources).toEqual(withImage.kinds);

    // without a fallback (unset, or "" to switch the image's off) the names are device IDs
    for (const env of [{ GPUCC_PCI_IDS: undefined }, { GPUCC_PCI_IDS: '' }]) {
      const bare = await names(root, { P_GPU_ALIAS: '', ...env });
      expect(bare.kinds).toEqual(['nvidia.com/NVIDIA_2330']);
      expect(bare.resources).toEqual(bare.kinds);
    }
  });

  it('the host’s pci.ids wins over the fallback; the flag wins over the variable', async () => {
    const { root, file } = await nodeWithoutPciIds();
    const other = path.join(path.dirname(file), 'other.ids');
    localFs.writeFileSync(other, '10de  NVIDIA Corporation\n\t2330  GH100 [From The Flag]\n');
    const flag = await names(root, { P_GPU_ALIAS: '', GPUCC_PCI_IDS: file }, ['--pci-ids', other]);
    expect(flag.kinds).toEqual(['nvidia.com/GH100_FROM_THE_FLAG']);
    expect(flag.resources).toEqual(flag.kinds);

    localFs.makeDir(path.join(root, 'usr/share/hwdata'));
    localFs.writeFileSync(
      path.join(root, 'usr/share/hwdata/pci.ids'),
      '10de  NVIDIA Corporation\n\t2330  GH100 [From The Host]\n',
    );
    const host = await names(root, { P_GPU_ALIAS: '', GPUCC_PCI_IDS: file });
    expect(host.kinds).toEqual(['nvidia.com/GH100_FROM_THE_HOST']);
    expect(host.resources).toEqual(host.kinds);
  });

  it.each([
    { name: 'kata-manager', command: 'generate', main: kataMain },
    { name: 'kata-manager', command: 'write', main: kataMain },
    { name: 'kata-manager', command: 'run', main: kataMain },
    { name: 'sandbox-device-plugin', command: 'list', main: pluginMain },
    { name: 'sandbox-device-plugin', command: 'run', main: pluginMain },
  ])('$name $command: a missing file exits 2 at start-up with a code and a hint', async ({ name, command, main }) => {
    const { root, file } = await nodeWithoutPciIds();
    const missing = `${file}.missing`;
    // checked even when the host has pci.ids and no per-model name is asked for: a typo shows at once
    const result = await run(main, name, [command, '--host-root', root, ...QUIET], { GPUCC_PCI_IDS: missing });
    expect(result.code).toBe(2);
    expect(result.err).toContain(`ERR_GPUCC_PCI_IDS_UNREADABLE: cannot read the pci.ids file ${missing}`);
    expect(result.err).toMatch(/hint: .*--pci-ids \(GPUCC_PCI_IDS\)/);
    expect(result.out).toBe('');
  });
});
