import path from 'node:path';
import {
  type AdvertisedDeviceRecord,
  discoverPci,
  type HostRoot,
  KUBELET_CHECKPOINT_PATH,
  localFs,
  writeAdvertisedDevices,
  writeCcModes,
} from '@gpucc/hal';
import { main as kataManager } from '@gpucc/kata-manager';
import { boundNode, captureCli, simNode, tempDir } from '@gpucc/testbed/vitest';
import { describe, expect, it, vi } from 'vitest';
import { main, type StatusDocument, type Terminal } from '../src/index.js';

/** `gpucc status` in-process, as a pipe sees it unless told otherwise. */
async function status(root: string, args: string[] = [], terminal: Partial<Terminal> = {}) {
  let out = '';
  const code = await main(['node', 'gpucc', 'status', '--host-root', root, ...args], {
    write: (t) => {
      out += t;
    },
    env: {},
    ...terminal,
  });
  return { code, out };
}

async function statusJson(root: string): Promise<{ code: number; doc: StatusDocument }> {
  const { code, out } = await status(root, ['--output', 'json']);
  return { code, doc: JSON.parse(out) as StatusDocument };
}

function file(root: string, rel: string, text: string): void {
  localFs.makeDir(path.dirname(path.join(root, rel)));
  localFs.writeFileSync(path.join(root, rel), text);
}

/** A process of the host's proc/: its name and the files its fds point at. */
function proc(root: string, pid: number, comm: string, fds: string[]): void {
  file(root, `proc/${pid}/comm`, `${comm}\n`);
  localFs.makeDir(path.join(root, `proc/${pid}/fd`));
  fds.forEach((target, i) => {
    localFs.symlinkSync(target, path.join(root, `proc/${pid}/fd/${i + 3}`));
  });
}

/** The kubelet's checkpoint as a kubelet of 1.20+ writes it. */
function checkpoint(entries: Array<{ pod: string; container: string; resource: string; ids: string[] }>): string {
  return JSON.stringify({
    Data: {
      PodDeviceEntries: entries.map((e) => ({
        PodUID: e.pod,
        ContainerName: e.container,
        ResourceName: e.resource,
        DeviceIDs: { '-1': e.ids },
        AllocResp: 'e30=',
      })),
      RegisteredDevices: { 'nvidia.com/pgpu': ['23', '27', '31', '35', '39', '43', '47', '51'] },
    },
    Checksum: 1234,
  });
}

/** What a converged node carries: GPUs on VFIO, specs written, devices advertised and modes recorded. */
async function convergedNode() {
  const node = await boundNode('hgx-h100-8');
  const kata = await captureCli(kataManager, 'kata-manager', ['write', '--host-root', node.root]);
  expect(kata.code).toBe(0);
  await advertise(node.sysfs, ['23', '27', '31', '35', '39', '43', '47', '51']);
  const gpus = gpusOf(node.sysfs);
  await writeCcModes(node.sysfs, Object.fromEntries(gpus.map((a) => [a, { cc: 'on', ppcie: 'off', desired: 'on' }])));
  return { ...node, gpus };
}

function gpusOf(sysfs: HostRoot): string[] {
  return discoverPci(sysfs)
    .devices.filter((d) => d.kind === 'gpu')
    .map((d) => d.address);
}

async function advertise(sysfs: HostRoot, groups: string[], health: Record<string, 'Unhealthy'> = {}) {
  const topology = discoverPci(sysfs);
  const records = Object.fromEntries(
    groups.map((g): [string, AdvertisedDeviceRecord] => {
      const functions = (topology.groups.get(Number(g)) ?? []).filter((a) => topology.byAddress.get(a)?.kind === 'gpu');
      return [
        `nvidia.com/pgpu=${g}`,
        {
          resourceName: 'nvidia.com/pgpu',
          id: g,
          health: health[g] ?? 'Healthy',
          ...(health[g] ? { reason: 'no longer advertisable: its node is gone' } : {}),
          functions,
          deviceNodes: ['/dev/vfio/vfio', `/dev/vfio/${g}`],
        },
      ];
    }),
  );
  await writeAdvertisedDevices(sysfs, records);
}

describe('gpucc status on a simulated node', () => {
  it('shows each GPU with its mode, CDI device, advertised health, pod and the VM holding it', async () => {
    const node = await convergedNode();
    file(
      node.root,
      KUBELET_CHECKPOINT_PATH,
      checkpoint([
        { pod: '6f1c2d3e-0000-4000-8000-000000000001', container: 'trainer', resource: 'nvidia.com/pgpu', ids: ['23'] },
      ]),
    );
    proc(node.root, 1, 'systemd', ['/dev/null']);
    proc(node.root, 4242, 'qemu-system-x86', ['/dev/kvm', '/dev/vfio/vfio', '/dev/vfio/23']);

    const { code, doc } = await statusJson(node.root);
    expect(code).toBe(0);
    expect(doc.problems).toEqual([]);
    const first = doc.devices.find((d) => d.address === '0000:13:00.0')!;
    expect(first).toMatchObject({
      kind: 'gpu',
      model: 'GH100 [H100 SXM5 80GB]',
      driver: 'vfio-pci',
      iommuGroup: 23,
      vfioNodes: ['/dev/vfio/23'],
      cc: { cc: 'on', ppcie: 'off', desired: 'on' },
      cdi: { name: 'nvidia.com/pgpu=23', file: '/var/run/cdi/nvidia.com-pgpu_gpucc.yaml' },
      advertised: { resource: 'nvidia.com/pgpu', id: '23', health: 'Healthy' },
      allocations: [{ podUid: '6f1c2d3e-0000-4000-8000-000000000001', container: 'trainer' }],
      holders: [{ pid: 4242, comm: 'qemu-system-x86', vm: true }],
      vfioManager: { phase: 'bound', targetDriver: 'vfio-pci' },
    });
    expect(doc.devices.filter((d) => d.kind === 'gpu')).toHaveLength(8);
    expect(doc.devices.filter((d) => d.kind === 'nvswitch')).toHaveLength(4);
    expect(doc.header).toMatchObject({ tee: 'sev-snp', iommu: true, vfioModel: 'legacy' });
    expect(doc.holdersKnown).toBe(true);
    expect(doc.allocationsKnown).toBe(true);
    expect(doc.unreadable).toEqual([]);

    const table = await status(node.root);
    expect(table.out).toMatch(
      /^0000:13:00\.0 +gpu +GH100 \[H100 SXM5 80GB\] +0 +23 +vfio-pci +\/dev\/vfio\/23 +cc on, ppcie off +nvidia\.com\/pgpu=23 +Healthy +6f1c2d3e\/trainer +qemu-system-x86\[4242\]$/m,
    );
    expect(table.out).toMatch(/no problems/);
    expect(table.out).not.toContain('\u001b['); // piped: no colour
  });

  it('names every problem with its fix, and exits 1 on an error', async () => {
    const node = await convergedNode();
    // A pod holds group 27 but no VM does; the plugin advertises 99, which no spec names; 31's node is gone.
    file(
      node.root,
      KUBELET_CHECKPOINT_PATH,
      checkpoint([{ pod: 'p-27', container: 'c', resource: 'nvidia.com/pgpu', ids: ['27'] }]),
    );
    proc(node.root, 1, 'systemd', []);
    await advertise(node.sysfs, ['23', '27', '31', '35', '39', '43', '47', '51', '99']);
    localFs.removeSync(path.join(node.root, 'dev/vfio/31'));
    // 0000:43:00.0 reads CC off while the node asks for on.
    await writeCcModes(node.sysfs, { '0000:43:00.0': { cc: 'off', ppcie: 'off', desired: 'on' } });
    // vfio-manager bound 0000:53:00.0, and it is no longer on vfio-pci.
    await node.sysfs.write('sys/bus/pci/drivers/vfio-pci/unbind', '0000:53:00.0');

    const { code, doc } = await statusJson(node.root);
    expect(code).toBe(1);
    const kinds = doc.problems.map((p) => `${p.kind} ${p.subject}`);
    expect(kinds).toEqual(
      expect.arrayContaining([
        'allocated-not-held 0000:23:00.0',
        'mode-differs 0000:43:00.0',
        'vfio-not-bound 0000:53:00.0',
        'cdi-node-missing nvidia.com/pgpu=31',
        'advertised-without-spec nvidia.com/pgpu=99',
      ]),
    );
    for (const p of doc.problems) expect(p.fix.length).toBeGreaterThan(10);
    const table = await status(node.root);
    expect(table.out).toMatch(
      /^error 0000:53:00\.0: vfio-manager wants 0000:53:00\.0 on vfio-pci \(bound\) but it is on no driver\n {2}fix: vfio-manager bind --device 0000:53:00\.0/m,
    );
  });

  it('reads a tree with no proc/ and no kubelet dir, and says what it could not read', async () => {
    const node = await boundNode('h100-pcie-1');
    localFs.removeSync(path.join(node.root, 'proc'));
    localFs.removeSync(path.join(node.root, 'var/lib/kubelet'));
    const { code, doc } = await statusJson(node.root);
    expect(code).toBe(0);
    expect(doc.devices).toHaveLength(1);
    expect(doc.devices[0]).toMatchObject({ driver: 'vfio-pci', cc: null, cdi: null, allocations: [], holders: [] });
    expect(doc.holdersKnown).toBe(false);
    expect(doc.allocationsKnown).toBe(false);
    expect(doc.unreadable).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^no kubelet dir/),
        expect.stringMatching(/^no proc\/ of the host/),
      ]),
    );
    const table = await status(node.root);
    expect(table.out).toMatch(
      /not read:\n {2}no kubelet dir \(\/var\/lib\/kubelet\/device-plugins\): allocations unknown/,
    );
  });

  it('refuses an empty tree as every binary does: exit 2, ERR_GPUCC_HOST_ROOT_INVALID, no table', async () => {
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const { code, out } = await status(tempDir(), ['--output', 'json']);
      expect(code).toBe(2);
      expect(out).toBe('');
      expect(stderr.mock.calls.map(([chunk]) => String(chunk)).join('')).toContain('ERR_GPUCC_HOST_ROOT_INVALID');
    } finally {
      stderr.mockRestore();
    }
  });

  it('shows a GPU still on the NVIDIA driver and the host process holding it', async () => {
    const node = simNode('h100-pcie-1');
    const gpu = gpusOf(node.sysfs)[0]!;
    file(node.root, `proc/driver/nvidia/gpus/${gpu}/information`, 'Model: H100\nDevice Minor: 0\n');
    proc(node.root, 900, 'nvidia-persiste', ['/dev/nvidiactl', '/dev/nvidia0']);
    const { doc } = await statusJson(node.root);
    expect(doc.devices[0]).toMatchObject({
      driver: 'nvidia',
      vfioNodes: [],
      holders: [{ pid: 900, comm: 'nvidia-persiste', vm: false }],
    });
  });

  it('refuses a bad option with exit 2 and a hint', async () => {
    const node = simNode('h100-pcie-1');
    const spy = captureCli((argv, out) => main(argv, { write: out, env: {} }), 'gpucc', [
      'status',
      '--host-root',
      node.root,
      '--output',
      'yaml',
    ]);
    const { code, err } = await spy;
    expect(code).toBe(2);
    expect(err).toMatch(/--output.*table, json/);
  });
});

describe('operand health', () => {
  it('lays each /readyz answer over what the files say; no answer leaves the files’ word', async () => {
    const { withHealth } = await import('../src/health.js');
    const files = [
      { name: 'cc-manager', state: 'ready', evidence: '/run/nvidia/validations/.cc-manager-ctr-ready' },
      { name: 'vfio-manager', state: 'seen', evidence: '/var/lib/gpucc/vfio-manager.json' },
      { name: 'kata-manager', state: 'absent', evidence: 'no CDI spec names a VFIO device' },
    ] as const;
    const answers: Record<string, Awaited<ReturnType<typeof import('../src/health.js').probeReady>>> = {
      'h:1': { ready: false, reason: 'reconcile failed: ERR_GPUCC_TOOL_TIMEOUT' },
      'h:2': { ready: true },
    };
    const states = await withHealth(
      [...files],
      { 'cc-manager': 'h:1', 'vfio-manager': 'h:2', 'kata-manager': 'h:3' },
      async (address) => answers[address],
    );
    expect(states).toEqual([
      { name: 'cc-manager', state: 'not ready', evidence: 'h:1/readyz: reconcile failed: ERR_GPUCC_TOOL_TIMEOUT' },
      { name: 'vfio-manager', state: 'ready', evidence: 'h:2/readyz' },
      { name: 'kata-manager', state: 'absent', evidence: 'no CDI spec names a VFIO device; no answer on h:3/readyz' },
    ]);
  });

  it('refuses a --health-address that is not <operand>=<host>:<port>', async () => {
    const node = simNode('h100-pcie-1');
    const { code, err } = await captureCli((argv, out) => main(argv, { write: out, env: {} }), 'gpucc', [
      'status',
      '--host-root',
      node.root,
      '--health-address',
      'nvidia-smi=127.0.0.1:1',
    ]);
    expect(code).toBe(2);
    expect(err).toMatch(/expected <operand>=<host>:<port>/);
  });
});
