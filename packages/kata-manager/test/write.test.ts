import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { injectFault } from '@gpucc/sim';
import { bindToVfio } from '@gpucc/testbed/fixtures';
import { boundNode, simNode } from '@gpucc/testbed/vitest';
import { describe, expect, it } from 'vitest';
import { writeSpecFile } from '../src/apply.js';
import { exitCodeOf, generate, write } from '../src/commands.js';
import { OWNER_HEADER } from '../src/spec.js';

const CDI = '/var/run/cdi';
const opts = (extra: Partial<Parameters<typeof write>[1]> = {}) => ({
  aliases: {},
  cdiDir: CDI,
  dryRun: false,
  ...extra,
});
const list = (root: string, dir = 'var/run/cdi') =>
  existsSync(path.join(root, dir)) ? readdirSync(path.join(root, dir)).sort() : [];
const read = (root: string, file: string, dir = 'var/run/cdi') => readFileSync(path.join(root, dir, file), 'utf8');
const namesIn = (text: string) => [...text.matchAll(/name: "(\d+)"/g)].map((m) => m[1]);

describe('kata-manager write', () => {
  it('writes each spec once: a second write on the same node makes zero writes (counted by the recorder)', async () => {
    const { root, sysfs } = await boundNode('hgx-h100-8', { nvswitches: true, iommufd: false });
    const first = sysfs.withRecorder();
    const one = await write(first, opts());
    expect(one.report!.results.map((r) => [r.fileName, r.outcome])).toEqual([
      ['nvidia.com-nvswitch_gpucc.yaml', 'written'],
      ['nvidia.com-pgpu_gpucc.yaml', 'written'],
    ]);
    expect(first.recorder.writes).toBe(2);
    const before = statSync(path.join(root, 'var/run/cdi/nvidia.com-pgpu_gpucc.yaml'));

    const second = sysfs.withRecorder();
    const two = await write(second, opts());
    expect(second.recorder.writes).toBe(0);
    expect(two.report!.results.every((r) => r.outcome === 'unchanged')).toBe(true);
    expect(statSync(path.join(root, 'var/run/cdi/nvidia.com-pgpu_gpucc.yaml')).ino).toBe(before.ino);
    expect(exitCodeOf(two)).toBe(0);
  });

  it('removes the temp files a killed write left beside a spec it writes (older than a minute), not a live one', async () => {
    const { root, sysfs } = await boundNode('h100-pcie-1', { iommufd: false });
    const dir = path.join(root, 'var/run/cdi');
    mkdirSync(dir, { recursive: true });
    const stale = path.join(dir, '.nvidia.com-pgpu_gpucc.yaml.4242.0badcafe.tmp');
    const live = path.join(dir, '.nvidia.com-pgpu_gpucc.yaml.4343.0000beef.tmp');
    writeFileSync(stale, 'cdiVersion: ');
    writeFileSync(live, 'cdiVersion: ');
    const old = new Date(Date.now() - 120_000);
    utimesSync(stale, old, old);
    await write(sysfs, opts());
    expect(list(root)).toEqual(['.nvidia.com-pgpu_gpucc.yaml.4343.0000beef.tmp', 'nvidia.com-pgpu_gpucc.yaml']);
  });

  it('follows unbind and rebind, and removes a spec whose last device left instead of writing it empty', async () => {
    const { root, sysfs } = await boundNode('iommufd-h200-2', { nvswitches: true, iommufd: false });
    await write(sysfs, opts());
    expect(namesIn(read(root, 'nvidia.com-pgpu_gpucc.yaml'))).toEqual(['43', '47']);

    await sysfs.write('sys/bus/pci/drivers/vfio-pci/unbind', '0000:23:00.0');
    await write(sysfs, opts());
    expect(namesIn(read(root, 'nvidia.com-pgpu_gpucc.yaml'))).toEqual(['47']);

    await sysfs.write('sys/bus/pci/drivers/vfio-pci/unbind', '0000:43:00.0');
    const empty = await write(sysfs, opts());
    expect(empty.report!.results).toMatchObject([{ fileName: 'nvidia.com-pgpu_gpucc.yaml', outcome: 'removed' }]);
    expect(list(root)).toEqual([]);

    await sysfs.write('sys/bus/pci/drivers/vfio-pci/bind', '0000:43:00.0');
    await write(sysfs, opts());
    expect(namesIn(read(root, 'nvidia.com-pgpu_gpucc.yaml'))).toEqual(['47']);
  });

  it('an alias change writes the new kind first, then removes the old file', async () => {
    const { root, sysfs } = await boundNode('hgx-h100-8', { nvswitches: true, iommufd: false });
    await write(sysfs, opts());
    expect(list(root)).toEqual(['nvidia.com-nvswitch_gpucc.yaml', 'nvidia.com-pgpu_gpucc.yaml']);
    const s = sysfs.withRecorder();
    await write(s, opts({ aliases: { gpuAlias: '' } }));
    expect(list(root)).toEqual(['nvidia.com-GH100_H100_SXM5_80GB_gpucc.yaml', 'nvidia.com-nvswitch_gpucc.yaml']);
    expect(s.recorder.writeLog.map((w) => [path.basename(w.path), w.value])).toEqual([
      ['nvidia.com-GH100_H100_SXM5_80GB_gpucc.yaml', expect.stringMatching(/bytes/)],
      ['nvidia.com-pgpu_gpucc.yaml', '<unlink>'],
    ]);
  });

  it('never touches a file it did not write: a same-named foreign spec is refused, other files stay', async () => {
    const { root, sysfs } = await boundNode('h100-pcie-1', { nvswitches: true, iommufd: false });
    const dir = path.join(root, 'var/run/cdi');
    mkdirSync(dir, { recursive: true });
    const theirs =
      'cdiVersion: "0.5.0"\nkind: nvidia.com/pgpu\ndevices:\n  - name: "11"\n    containerEdits:\n      deviceNodes:\n        - path: /dev/vfio/11\n';
    writeFileSync(path.join(dir, 'nvidia.com-pgpu_gpucc.yaml'), theirs);
    writeFileSync(path.join(dir, 'vendor.com-other.yaml'), 'cdiVersion: 0.3.0\nkind: vendor.com/other\n');
    const result = await write(sysfs, opts());
    expect(result.report!.results).toMatchObject([
      { fileName: 'nvidia.com-pgpu_gpucc.yaml', outcome: 'refused', error: { code: 'ERR_GPUCC_CDI_SPEC_NOT_OURS' } },
    ]);
    expect(exitCodeOf(result)).toBe(1);
    expect(read(root, 'nvidia.com-pgpu_gpucc.yaml')).toBe(theirs);
    expect(read(root, 'vendor.com-other.yaml')).toBe('cdiVersion: 0.3.0\nkind: vendor.com/other\n');
  });

  it.each([
    ['nvidia.json', 'a stale file'],
    ['nvidia.com-pgpu.yaml', 'the GPU Operator’s kata sandbox device plugin, at its GenerateSpecName name'],
  ])('refuses to declare devices that another writer’s %s already declares (%s)', async (theirs) => {
    const { root, sysfs } = await boundNode('h100-pcie-1', { iommufd: false });
    const dir = path.join(root, 'var/run/cdi');
    mkdirSync(dir, { recursive: true });
    const text = JSON.stringify({
      cdiVersion: '0.5.0',
      kind: 'nvidia.com/pgpu',
      devices: [{ name: '11', containerEdits: { deviceNodes: [{ path: '/dev/vfio/11' }] } }],
    });
    writeFileSync(path.join(dir, theirs), text);
    const result = await write(sysfs, opts());
    expect(result.report!.conflicts).toEqual([
      { kind: 'nvidia.com/pgpu', devices: ['11'], ours: 'nvidia.com-pgpu_gpucc.yaml', theirs },
    ]);
    expect(result.report!.errors.map((e) => e.code)).toEqual(['ERR_GPUCC_CDI_DEVICE_CONFLICT']);
    expect(result.report!.errors[0]!.message).toContain(
      `/var/run/cdi/${theirs} (another CDI writer) already declares nvidia.com/pgpu=11`,
    );
    expect(exitCodeOf(result)).toBe(1);
    expect(readFileSync(path.join(dir, theirs), 'utf8')).toBe(text); // reported, not touched
    expect(readdirSync(dir)).toEqual([theirs]); // and not declared twice: theirs still resolves
  });

  it('removes only our own stale specs, recognised by the header', async () => {
    const { root, sysfs } = simNode('h100-pcie-1'); // nothing bound: no spec is needed
    const dir = path.join(root, 'var/run/cdi');
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      path.join(dir, 'nvidia.com-old.yaml'),
      `${OWNER_HEADER}\ncdiVersion: "0.5.0"\nkind: nvidia.com/old\n`,
    );
    writeFileSync(path.join(dir, 'nvidia.com-pgpu_gpucc.yaml'), 'cdiVersion: "0.5.0"\nkind: nvidia.com/pgpu\n');
    const result = await write(sysfs, opts());
    expect(result.report!.results).toMatchObject([
      { fileName: 'nvidia.com-old.yaml', kind: 'nvidia.com/old', outcome: 'removed' },
    ]);
    expect(list(root)).toEqual(['nvidia.com-pgpu_gpucc.yaml']);
  });

  it('writes to /etc/cdi when asked, and refuses to write through a symlink', async () => {
    const { root, sysfs } = await boundNode('h100-pcie-1', { nvswitches: true, iommufd: false });
    await write(sysfs, opts({ cdiDir: '/etc/cdi' }));
    expect(list(root, 'etc/cdi')).toEqual(['nvidia.com-pgpu_gpucc.yaml']);
    expect(list(root)).toEqual([]);

    mkdirSync(path.join(root, 'var/run/cdi'), { recursive: true });
    symlinkSync('/etc/cdi/nvidia.com-pgpu_gpucc.yaml', path.join(root, 'var/run/cdi/nvidia.com-pgpu_gpucc.yaml'));
    const result = await write(sysfs, opts());
    expect(result.report!.results[0]).toMatchObject({
      outcome: 'refused',
      error: { code: 'ERR_GPUCC_CDI_SPEC_NOT_OURS' },
    });
  });

  it('a dry run plans and writes nothing', async () => {
    const { root, sysfs } = await boundNode('h100-pcie-1', { nvswitches: true, iommufd: false });
    const s = sysfs.withRecorder();
    const result = await write(s, opts({ dryRun: true }));
    expect(result.report).toBeUndefined();
    expect(result.plan.actions).toMatchObject([
      { action: 'write', fileName: 'nvidia.com-pgpu_gpucc.yaml', why: 'new', devices: 1 },
    ]);
    expect(s.recorder.writes).toBe(0);
    expect(list(root)).toEqual([]);
  });

  it('leaves out a bound device until its node appears, then publishes it', async () => {
    const { root, sysfs } = simNode('h100-pcie-1', { iommufd: false });
    await injectFault(root, { kind: 'devnode-never', device: '0000:41:00.0' });
    await bindToVfio(sysfs, '0000:41:00.0');
    const result = await write(sysfs, opts());
    expect(result.generated.selection.skipped).toEqual([
      { address: '0000:41:00.0', reason: 'waiting for /dev/vfio/11', waiting: true },
    ]);
    expect(exitCodeOf(result)).toBe(0); // waiting is not a failure: the node's appearance is an event
    expect(list(root)).toEqual([]);
    writeFileSync(path.join(root, 'dev/vfio/11'), ''); // udev catches up
    await write(sysfs, opts());
    expect(namesIn(read(root, 'nvidia.com-pgpu_gpucc.yaml'))).toEqual(['11']);
  });

  it('the writer refuses an invalid spec with ERR_GPUCC_CDI_SPEC_INVALID and leaves the file as it was', async () => {
    const { root, sysfs } = await boundNode('h100-pcie-1', { nvswitches: true, iommufd: false });
    await write(sysfs, opts());
    const good = read(root, 'nvidia.com-pgpu_gpucc.yaml');
    const s = sysfs.withRecorder();
    const bad = [
      good.replace('name: "11"', 'name: 11'), // a number, not a string
      `${good}  - name: "11"\n    containerEdits:\n      deviceNodes:\n        - path: /dev/vfio/11\n`, // duplicate name
      good.replace(/ {4}containerEdits:\n( {6}.*\n| {8}.*\n)*/, '    containerEdits: {}\n'), // empty edits
      good.replace('cdiVersion: "0.5.0"', 'cdiVersion: "0.4.0"'), // below the digit-name minimum
    ];
    for (const text of bad) {
      await expect(writeSpecFile(s, 'var/run/cdi/nvidia.com-pgpu_gpucc.yaml', text)).rejects.toMatchObject({
        code: 'ERR_GPUCC_CDI_SPEC_INVALID',
      });
    }
    expect(s.recorder.writes).toBe(0);
    expect(read(root, 'nvidia.com-pgpu_gpucc.yaml')).toBe(good);
    expect(readdirSync(path.join(root, 'var/run/cdi'))).toEqual(['nvidia.com-pgpu_gpucc.yaml']); // no temp file left
  });

  it('an alias that breaks the CDI class rules reaches no file', async () => {
    const { root, sysfs } = await boundNode('h100-pcie-1', { nvswitches: true, iommufd: false });
    const result = await write(sysfs, opts({ aliases: { gpuAlias: 'h100.sxm' } }));
    expect(result.generated.selection.skipped).toMatchObject([
      { address: '0000:41:00.0', waiting: false, error: { code: 'ERR_GPUCC_INVALID_RESOURCE_NAME' } },
    ]);
    expect(exitCodeOf(result)).toBe(1);
    expect(list(root)).toEqual([]);
  });

  it('generate reads only', async () => {
    const { sysfs } = await boundNode('hgx-b200-8', { nvswitches: true, iommufd: true });
    const s = sysfs.withRecorder();
    const generated = generate(s, { aliases: {} }, 'json');
    expect(s.recorder.writes).toBe(0);
    expect(JSON.parse(generated.specs[0]!.text!).devices.map((d: { name: string }) => d.name)).toEqual([
      '0',
      '1',
      '2',
      '3',
      '4',
      '5',
      '6',
      '7',
    ]);
  });
});
