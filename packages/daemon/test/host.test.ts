import { mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { attachedSimulator, attachSimulator, GpuccError } from '@gpucc/hal';
import { createNode } from '@gpucc/sim';
import { captureLines } from '@gpucc/testbed/fixtures';
import { tempDir } from '@gpucc/testbed/vitest';
import { describe, expect, it } from 'vitest';
import { createLogger, openHost } from '../src/index.js';

function logger() {
  const out = captureLines();
  return { out, logger: createLogger({ name: 't', format: 'json', level: 'debug', destination: out.sink }) };
}

describe('openHost', () => {
  it('opens a simulated node through the kernel simulator and warns about it on the first line', async () => {
    const root = path.join(tempDir(), 'node');
    createNode(root, 'h100-pcie-1');
    const { out, logger: log } = logger();
    const host = await openHost(root, log);
    expect(host.simulated).toBe(true);
    expect(host.sysfs.simulated).toBe(true);
    expect(host.sysfs.root).toBe(root);
    expect(host.sysfs.readdir('sys/bus/pci/devices').length).toBeGreaterThan(0);
    expect(out.records[0]).toMatchObject({ event: 'host.simulated', level: 'warn', hostRoot: root });
    expect(String(out.records[0]!.msg)).toContain('SIMULATED');
  });

  it('refuses a simulated node when no simulator is attached (a deployed binary), before any access', async () => {
    const root = path.join(tempDir(), 'node');
    createNode(root, 'h100-pcie-1');
    const { out, logger: log } = logger();
    const attached = attachedSimulator();
    attachSimulator(undefined);
    try {
      await expect(openHost(root, log)).rejects.toSatisfy(
        (error) =>
          error instanceof GpuccError &&
          error.code === 'ERR_GPUCC_SIMULATOR_NOT_ATTACHED' &&
          error.hint.includes('pnpm exec'),
      );
    } finally {
      attachSimulator(attached);
    }
    expect(out.events()).toEqual([]);
  });

  it("gives a simulated node's own tools, and none for a real host", async () => {
    const root = path.join(tempDir(), 'node');
    createNode(root, 'h100-pcie-1');
    const { logger: log } = logger();
    expect((await openHost(root, log)).tools?.modprobe).toBe(path.join(root, 'usr/sbin/modprobe'));
    const host = tempDir();
    mkdirSync(path.join(host, 'sys/bus/pci/devices'), { recursive: true });
    expect((await openHost(host, log)).tools).toBeUndefined();
  });

  it('opens any other directory laid out as a host as a real host, read through plain sysfs', async () => {
    const root = tempDir();
    mkdirSync(path.join(root, 'sys/bus/pci/devices'), { recursive: true });
    const { out, logger: log } = logger();
    const host = await openHost(root, log);
    expect(host.simulated).toBe(false);
    expect(host.sysfs.simulated).toBe(false);
    expect(out.events()).toEqual(['host.open']);
    expect(out.records[0]).toMatchObject({ hostRoot: root, simulated: false });
  });

  it('refuses an empty directory as a host root, writing nothing into it', async () => {
    const { logger: log } = logger();
    const root = tempDir();
    await expect(openHost(root, log)).rejects.toThrow(/is not a host: \/sys\/bus\/pci\/devices does not exist/);
    expect(readdirSync(root)).toEqual([]);
  });

  it('refuses a host root that does not exist', async () => {
    const { logger: log } = logger();
    const missing = path.join(tempDir(), 'nope');
    await expect(openHost(missing, log)).rejects.toSatisfy(
      (error) => error instanceof GpuccError && error.code === 'ERR_GPUCC_HOST_ROOT_INVALID',
    );
  });
});
