// Issue 12 item 4: one bad attribute costs that attribute, not the device. A GPU whose numa_node holds
// garbage is still a GPU for vfio-manager, cc-manager and the doctor (with a warning); a GPU whose
// identity cannot be read is named, listed and never acted on, and vfio-manager does not call a node
// with such a GPU of its own converged.
import { breakAttribute, readWriteLog } from '@gpucc/sim';
import { simNode } from '@gpucc/testbed/vitest';
import { describe, expect, it } from 'vitest';
import { runBinary } from './run-binary.js';

const GPU = '0000:43:00.0';

describe('a GPU with an unreadable numa_node', () => {
  it('is bound, switched, counted and restored like the others, with a warning', async () => {
    const { root } = simNode('hgx-h100-8');
    breakAttribute(root, GPU, 'numa_node', 'banana');
    const bind = await runBinary('vfio-manager', ['bind', '--all', '--host-root', root, '--log-format', 'json']);
    expect(bind.code).toBe(0);
    expect(bind.stdout).toMatch(/0000:43:00\.0\s+bound\s+vfio-pci/);
    expect(bind.stderr).toMatch(/"event":"discovery.warning".*0000:43:00.0: numa_node is unknown/);
    const status = await runBinary('vfio-manager', ['status', '--host-root', root]);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/0000:43:00\.0\s+gpu\s+10de:2330\s+vfio-pci/);
    expect(status.stdout).toContain('warning: ERR_GPUCC_MALFORMED_ATTRIBUTE: 0000:43:00.0: numa_node is unknown');
    const set = await runBinary('cc-manager', ['set', 'on', '--host-root', root]);
    expect(set.code).toBe(0);
    expect(set.stdout).toMatch(/0000:43:00\.0\s+gpu\s+H100\s+cc off, ppcie off\s+switched\s+cc on/);
    const doctor = await runBinary('cc-manager', ['doctor', '--host-root', root]);
    expect(doctor.stdout).toMatch(/gpus\s+8 NVIDIA GPUs/);
    const restore = await runBinary('vfio-manager', ['unbind', '--device', GPU, '--restore', '--host-root', root]);
    expect(restore.code).toBe(0);
    expect(restore.stdout).toMatch(/0000:43:00\.0\s+restored\s+nvidia/);
  });
});

describe('a GPU whose vendor cannot be read', () => {
  it('is named and listed, gets no write, and keeps vfio-manager from calling its node converged', async () => {
    const { root } = simNode('hgx-h100-8');
    expect((await runBinary('vfio-manager', ['bind', '--all', '--host-root', root])).code).toBe(0);
    // on a uevent-less tree the IDs come from vendor/device/class: damage both sources
    breakAttribute(root, GPU, 'uevent', 'missing');
    breakAttribute(root, GPU, 'vendor', 'notanid');
    const writes = readWriteLog(root).length;
    const status = await runBinary('vfio-manager', ['status', '--host-root', root]);
    expect(status.code).toBe(1);
    expect(status.stdout).toMatch(/NOT converged/);
    expect(status.stdout).toMatch(/unreadable: 0000:43:00\.0 \(moved by vfio-manager\): ERR_GPUCC_MALFORMED_ATTRIBUTE/);
    const restore = await runBinary('vfio-manager', ['unbind', '--all', '--restore', '--host-root', root]);
    expect(restore.code).toBe(1);
    expect(restore.stdout).toMatch(/0000:43:00\.0\s+failed.*ERR_GPUCC_MALFORMED_ATTRIBUTE/);
    const one = await runBinary('vfio-manager', ['unbind', '--device', GPU, '--restore', '--host-root', root]);
    expect(one.code).toBe(1);
    expect(one.stderr).toMatch(
      /vfio-manager: ERR_GPUCC_MALFORMED_ATTRIBUTE: .*0000:43:00.0\/vendor .* holds "notanid"/,
    );
    expect(
      readWriteLog(root)
        .slice(writes)
        .filter((w) => w.path.includes(GPU)),
    ).toEqual([]);
  });
});
