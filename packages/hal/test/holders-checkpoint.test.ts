import path from 'node:path';
import { findHolders, HostRoot, localFs, parseKubeletCheckpoint, readKubeletCheckpoint } from '@gpucc/hal';
import { tempDir } from '@gpucc/testbed/vitest';
import { describe, expect, it } from 'vitest';

function tree(): { root: string; sysfs: HostRoot; proc: (pid: number, comm: string, fds: string[]) => void } {
  const root = tempDir();
  return {
    root,
    sysfs: new HostRoot(root),
    proc: (pid, comm, fds) => {
      localFs.makeDir(path.join(root, `proc/${pid}/fd`));
      localFs.writeFileSync(path.join(root, `proc/${pid}/comm`), `${comm}\n`);
      fds.forEach((target, i) => {
        localFs.symlinkSync(target, path.join(root, `proc/${pid}/fd/${i}`));
      });
    },
  };
}

describe('findHolders (the host proc/, read-only)', () => {
  it('finds VMs and host processes by the GPU device nodes they hold, and nothing else', () => {
    const t = tree();
    t.proc(1, 'systemd', ['/dev/null', '/run/systemd/notify']);
    t.proc(310, 'qemu-system-x86', ['/dev/kvm', '/dev/vfio/vfio', '/dev/vfio/23', '/dev/vfio/27']);
    t.proc(311, 'cloud-hyperviso', ['/dev/iommu', '/dev/vfio/devices/vfio4']);
    t.proc(90, 'nvidia-persiste', ['/dev/nvidiactl', '/dev/nvidia0', '/dev/nvidia-uvm']);
    const scan = findHolders(t.sysfs);
    expect(scan.readable).toBe(true);
    const byPidAndNode = [...scan.holders].sort((a, b) => a.pid - b.pid || a.node.localeCompare(b.node));
    // No sys/ in this tree: the nodes name no PCI function, but the holders are still found.
    expect(byPidAndNode).toEqual([
      // /dev/nvidiactl and /dev/nvidia-uvm are shared by every GPU: only /dev/nvidia<minor> names one.
      { pid: 90, comm: 'nvidia-persiste', vm: false, node: '/dev/nvidia0', kind: 'nvidia', addresses: [] },
      // /dev/vfio/vfio (the legacy container) names no GPU: not listed.
      { pid: 310, comm: 'qemu-system-x86', vm: true, node: '/dev/vfio/23', kind: 'vfio-group', addresses: [] },
      { pid: 310, comm: 'qemu-system-x86', vm: true, node: '/dev/vfio/27', kind: 'vfio-group', addresses: [] },
      {
        pid: 311,
        comm: 'cloud-hyperviso',
        vm: true,
        node: '/dev/vfio/devices/vfio4',
        kind: 'vfio-device',
        addresses: [],
      },
    ]);
  });

  it('says proc/ is unreadable when it is missing or lists no process (a captured tree)', () => {
    const t = tree();
    expect(findHolders(t.sysfs)).toEqual({ readable: false, holders: [], unreadable: 0 });
    localFs.makeDir(path.join(t.root, 'proc'));
    localFs.writeFileSync(path.join(t.root, 'proc/cmdline'), 'ro\n');
    expect(findHolders(t.sysfs).readable).toBe(false);
  });

  it('counts a process whose fds cannot be listed, and goes on', () => {
    const t = tree();
    t.proc(1, 'init', []);
    localFs.makeDir(path.join(t.root, 'proc/77'));
    // Another user's process reads EACCES as root does not; a link loop fails the listing alike.
    localFs.symlinkSync('fd', path.join(t.root, 'proc/77/fd'));
    t.proc(78, 'qemu-kvm', ['/dev/vfio/5']);
    const scan = findHolders(t.sysfs);
    expect(scan.unreadable).toBe(1);
    expect(scan.holders.map((h) => h.pid)).toEqual([78]);
  });
});

describe('the kubelet checkpoint', () => {
  const entry = { PodUID: 'uid-1', ContainerName: 'c', ResourceName: 'nvidia.com/pgpu', AllocResp: 'e30=' };

  it('reads v2 (IDs by NUMA node), v1 (a list) and the BootID beside Data', () => {
    const v2 = parseKubeletCheckpoint(
      JSON.stringify({
        Data: {
          PodDeviceEntries: [{ ...entry, DeviceIDs: { '0': ['23'], '1': ['51', '23'] } }],
          RegisteredDevices: { 'nvidia.com/pgpu': ['23', '51'] },
        },
        Checksum: 42,
        BootID: 'b00t',
      }),
    );
    expect(v2).toEqual({
      state: 'read',
      allocations: [{ podUid: 'uid-1', containerName: 'c', resourceName: 'nvidia.com/pgpu', deviceIds: ['23', '51'] }],
      registered: { 'nvidia.com/pgpu': ['23', '51'] },
      bootId: 'b00t',
    });
    const v1 = parseKubeletCheckpoint(
      JSON.stringify({ Data: { PodDeviceEntries: [{ ...entry, DeviceIDs: ['7'] }], RegisteredDevices: null } }),
    );
    expect(v1).toMatchObject({ state: 'read', allocations: [{ deviceIds: ['7'] }], registered: {} });
  });

  it('tolerates null lists and odd entries; refuses what is not a checkpoint, without throwing', () => {
    expect(parseKubeletCheckpoint('{"Data":{"PodDeviceEntries":null,"RegisteredDevices":null},"Checksum":1}')).toEqual({
      state: 'read',
      allocations: [],
      registered: {},
    });
    expect(parseKubeletCheckpoint('{"Data":{"PodDeviceEntries":[7,{"PodUID":1}]}}')).toMatchObject({ allocations: [] });
    expect(parseKubeletCheckpoint('{')).toMatchObject({ state: 'invalid' });
    expect(parseKubeletCheckpoint('{"allocations":[]}')).toEqual({ state: 'invalid', reason: 'no Data object' });
    expect(readKubeletCheckpoint(new HostRoot(tempDir()))).toEqual({ state: 'absent' });
  });
});
