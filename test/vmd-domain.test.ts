// Issue 13 item 4: Intel VMD puts its child devices in PCI domains from 10000 (drivers/pci/controller/vmd.c),
// e.g. an NVMe drive at 10000:01:00.0 on an Intel TDX server. They are real devices: discovered, listed and
// never called a damaged tree; but no VM can own one, so naming one as a passthrough target is refused
// (docs/facts/real-hosts.md#devices-behind-intel-vmd-cannot-be-passed-through).
import { discoverPci, type PciAddress, vmdControllerOf } from '@gpucc/hal';
import { readWriteLog } from '@gpucc/sim';
import { simNode } from '@gpucc/testbed/vitest';
import { describe, expect, it } from 'vitest';
import { runBinary } from './run-binary.js';

const NVME = '10000:01:00.0' as PciAddress;
const VMD_PORT = '10000:00:02.0' as PciAddress;
const CONTROLLER = '0000:d7:05.5';

/** JSON log lines at warn level or above (pino: 40 warn, 50 error). */
const warnings = (stderr: string) =>
  stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { level: number; msg: string })
    .filter((entry) => entry.level >= 40);

describe('an Intel TDX host with a VMD domain (gpucc-sim --vmd)', () => {
  it('discovery lists the VMD controller, its root port and the NVMe drive behind it, in address order, with no problem', () => {
    const { sysfs } = simNode('hgx-b200-8', { vmd: true });
    const topology = discoverPci(sysfs);
    expect(topology.problems).toEqual([]);
    expect(topology.warnings).toEqual([]);
    const nvme = topology.byAddress.get(NVME);
    expect(nvme).toMatchObject({ vendor: 0x8086, device: 0x0a54, class: 0x010802, driver: 'nvme', kind: 'other' });
    expect(nvme?.sysfsPath).toBe(`sys/devices/pci0000:d7/${CONTROLLER}/pci10000:00/${VMD_PORT}/${NVME}`);
    expect(nvme?.iommuGroup).toBeTypeOf('number');
    expect(topology.byAddress.get(VMD_PORT)?.kind).toBe('bridge');
    expect(topology.byAddress.get(CONTROLLER as PciAddress)).toMatchObject({ device: 0x28c0, driver: 'vmd' });
    expect(vmdControllerOf(NVME, nvme!.sysfsPath)).toBe(CONTROLLER);
    // numeric order: domain 10000 after every 4-digit domain
    expect(topology.addresses.slice(-2)).toEqual([VMD_PORT, NVME]);
  });

  it('no operand warns at start: the 5-digit domain is a real device, not a damaged tree', async () => {
    const { root, sysfs } = simNode('hgx-b200-8', { vmd: true });
    const log = ['--host-root', root, '--log-format', 'json', '--log-level', 'info'];
    const runs = [
      await runBinary('vfio-manager', ['bind', '--all', ...log]),
      await runBinary('vfio-manager', ['status', ...log]),
      await runBinary('cc-manager', ['status', ...log]),
      await runBinary('kata-manager', ['generate', ...log]),
      await runBinary('sandbox-device-plugin', ['list', ...log]),
    ];
    for (const r of runs) {
      expect(r.code, r.stderr).toBe(0);
      expect(warnings(r.stderr)).toEqual([]);
      expect(r.stdout + r.stderr).not.toMatch(/damaged|ERR_GPUCC_MALFORMED_ATTRIBUTE/);
    }
    const gpucc = await runBinary('gpucc', ['status', '--output', 'json', '--host-root', root]);
    expect(gpucc.code).toBe(0);
    expect(JSON.parse(gpucc.stdout).unreadable.filter((u: string) => u.startsWith('PCI:'))).toEqual([]);
    // bind --all took the 8 GPUs and left the NVMe drive (and its controller) on their drivers
    const status = JSON.parse(
      (await runBinary('vfio-manager', ['status', '--output', 'json', '--host-root', root])).stdout,
    );
    expect(status.converged).toBe(true);
    expect(readWriteLog(root).filter((w) => w.path.includes('10000:') || w.path.includes(CONTROLLER))).toEqual([]);
    expect(discoverPci(sysfs).byAddress.get(NVME)?.driver).toBe('nvme');
  });

  it.each([
    ['vfio-manager', ['bind', '--device', NVME]],
    ['vfio-manager', ['plan', '--device', NVME]],
    ['vfio-manager', ['bind', '--device', `0000:13:00.0,${NVME}`]],
    ['cc-manager', ['set', 'on', '--device', NVME]],
  ])('%s %j is refused with ERR_GPUCC_BEHIND_VMD, the reason and nothing written', async (name, args) => {
    const { root } = simNode('hgx-b200-8', { vmd: true });
    const result = await runBinary(name, [...args, '--host-root', root]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(
      new RegExp(`ERR_GPUCC_BEHIND_VMD: ${NVME} sits behind .*Intel VMD controller.* cannot be passed through`),
    );
    expect(result.stderr).toMatch(/hint: .*disable VMD/);
    if (name === 'vfio-manager') expect(result.stderr).toContain(CONTROLLER);
    expect(readWriteLog(root)).toEqual([]);
  });

  it.each([
    '100000:01:00.0', // 6 domain digits: the kernel never prints one
    '01000:01:00.0', // 5 digits with a leading zero: %04x would print 1000
    '10000:1:00.0',
    '10000:01:20.0', // device above 1f
    '10000:01:00.8',
    '1000G:01:00.0',
  ])('a malformed address %s is still refused with ERR_GPUCC_INVALID_PCI_ADDRESS', async (address) => {
    const { root } = simNode('hgx-b200-8', { vmd: true });
    for (const name of ['vfio-manager', 'cc-manager']) {
      const args = name === 'vfio-manager' ? ['bind', '--device', address] : ['set', 'on', '--device', address];
      const result = await runBinary(name, [...args, '--host-root', root]);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain('ERR_GPUCC_INVALID_PCI_ADDRESS');
    }
    expect(readWriteLog(root)).toEqual([]);
  });
});
