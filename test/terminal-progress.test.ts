// Progress of a long operation on a terminal: `cc-manager set` shows each device and `vfio-manager
// bind`/`unbind` each group as it goes, in a real pseudo-terminal (node-pty); piped, nothing extra.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { injectFault } from '@gpucc/sim';
import { boundNode, simNode } from '@gpucc/testbed/vitest';
import * as pty from 'node-pty';
import { describe, expect, it } from 'vitest';

const CC_MANAGER = path.resolve(import.meta.dirname, '../packages/cc-manager/bin/cc-manager.mjs');
const VFIO_MANAGER = path.resolve(import.meta.dirname, '../packages/vfio-manager/bin/vfio-manager.mjs');
const run = promisify(execFile);
const visible = (text: string) => text.replaceAll(new RegExp(`${'\u001b'}\\[[0-9;?]*[a-zA-Z]`, 'g'), '');

function inPty(bin: string, args: string[]): Promise<{ code: number; output: string }> {
  const env = Object.fromEntries(
    Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined && e[0] !== 'NO_COLOR'),
  );
  const term = pty.spawn(process.execPath, [bin, ...args], { name: 'xterm-256color', cols: 120, rows: 40, env });
  let output = '';
  term.onData((data) => {
    output += data;
  });
  return new Promise((resolve) => term.onExit(({ exitCode }) => resolve({ code: exitCode, output })));
}

describe('cc-manager set on a terminal', () => {
  it('shows each GPU as its reset ends and as it is verified, with its time; nothing extra when piped', async () => {
    const { root } = await boundNode('iommufd-h200-2');
    const terminal = await inPty(CC_MANAGER, ['set', 'on', '--host-root', root]);
    expect(terminal.code).toBe(0);
    const lines = visible(terminal.output);
    expect(lines).toMatch(/^✓ \[[12]\/4\] 0000:[0-9a-f]{2}:00\.0 {2}cc on set, reset {2}\d+\.\d\d s\r?$/m);
    expect(lines.match(/^✓ \[[34]\/4\] 0000:[0-9a-f]{2}:00\.0 {2}verified: cc on, ppcie off\r?$/gm)).toHaveLength(2);
    expect(lines).not.toMatch(/setting cc on and resetting/); // the progress replaces the info logs
    expect(terminal.output).toContain('\u001b[32m✓');

    const piped = await run(process.execPath, [CC_MANAGER, 'set', 'off', '--host-root', root]);
    expect(`${piped.stdout}${piped.stderr}`).not.toMatch(/\[\d\/4\]/);
  });
});

describe('vfio-manager bind and unbind --all on a terminal', () => {
  it('shows one line per IOMMU group as it is bound or restored, with its time; nothing extra when piped', async () => {
    const { root } = simNode('hgx-h100-8');
    const plan = await run(process.execPath, [VFIO_MANAGER, 'plan', '--all', '--output', 'json', '--host-root', root]);
    const groups = (
      JSON.parse(plan.stdout) as { groups: Array<{ steps: Array<{ writes: unknown[] }> }> }
    ).groups.filter((g) => g.steps.some((s) => s.writes.length > 0)).length;
    expect(groups).toBeGreaterThan(8); // eight GPUs and the NVSwitches, each in its own group

    const bound = await inPty(VFIO_MANAGER, ['bind', '--all', '--host-root', root]);
    expect(bound.code).toBe(0);
    const lines = visible(bound.output).match(
      /^✓ \[ ?\d+\/\d+\] group \d+ {2}.+ bound to vfio-pci {2}\d+\.\d\d s\r?$/gm,
    );
    expect(lines).toHaveLength(groups);
    expect(lines?.at(-1)).toContain(`[${groups}/${groups}]`);
    expect(visible(bound.output)).not.toMatch(/binding 0000:13:00\.0 to vfio-pci/); // the progress replaces the info logs

    const restored = await inPty(VFIO_MANAGER, ['unbind', '--all', '--restore', '--host-root', root]);
    expect(restored.code).toBe(0);
    expect(
      visible(restored.output).match(/^✓ \[ ?\d+\/\d+\] group \d+ {2}.+ back on \S+ {2}\d+\.\d\d s\r?$/gm),
    ).toHaveLength(groups);

    const piped = await run(process.execPath, [VFIO_MANAGER, 'bind', '--all', '--host-root', root]);
    expect(`${piped.stdout}${piped.stderr}`).not.toMatch(/\[ ?\d+\/\d+\] group/);
  });

  it('shows a group whose bind fails as failed, with its error, beside the groups that were bound', async () => {
    const { root } = simNode('hgx-h100-8');
    await injectFault(root, { kind: 'bind-error', device: '0000:13:00.0', errno: 'EIO' });
    const bound = await inPty(VFIO_MANAGER, ['bind', '--all', '--host-root', root]);
    expect(bound.code).toBe(1);
    const lines = visible(bound.output);
    expect(lines.match(/^✗ \[ ?\d+\/12\] group \d+ {2}failed: .*0000:13:00\.0.*$/gm)).toHaveLength(1);
    expect(lines.match(/^✓ \[ ?\d+\/12\] group \d+ {2}.+ bound to vfio-pci/gm)).toHaveLength(11);
    expect(bound.output).toContain('\u001b[31m✗');
  });
});
