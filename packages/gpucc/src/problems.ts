import type { DeviceRow, NodeView } from './observe.js';

/** Something wrong on the node, with the one line that fixes it (or finds out why). */
export interface Problem {
  /** Stable, for scripts: `vfio-not-bound`, `cdi-node-missing`, … */
  kind: string;
  severity: 'error' | 'warning';
  /** The device (address or `<resource>=<id>`) it concerns. */
  subject: string;
  message: string;
  fix: string;
}

/** The problems a node shows, in device order. Pure: the view in, the list out. */
export function findProblems(view: NodeView): Problem[] {
  const problems: Problem[] = [];
  for (const row of view.devices) problems.push(...rowProblems(row, view));
  for (const c of view.cdiMissingNodes) {
    problems.push({
      kind: 'cdi-node-missing',
      severity: 'error',
      subject: c.name,
      message: `CDI device ${c.name} (${c.file}) names ${c.missing.join(', ')}, which the host does not have: a container asking for it fails to start`,
      fix: 'check that kata-manager runs (it rewrites the spec when devices change): kata-manager write --host-root <root>',
    });
  }
  for (const a of view.advertisedWithoutSpec) {
    problems.push({
      kind: 'advertised-without-spec',
      severity: 'error',
      subject: `${a.resource}=${a.id}`,
      message: `the device plugin advertises ${a.resource}=${a.id} but no CDI spec names it: a pod allocated it cannot start`,
      fix: 'run kata-manager with the same naming options as the device plugin (--per-model, --aliases), or check its logs',
    });
  }
  return problems;
}

/** The CC and PPCIe modes cc-manager converges a device on for a node mode (docs/facts/cc-mode.md#ppcie-rules). */
function expectedModes(row: DeviceRow, desired: string): { cc?: string; ppcie?: string } {
  return {
    ...(row.kind === 'gpu' ? { cc: desired === 'ppcie' ? 'off' : desired } : {}),
    ppcie: desired === 'ppcie' ? 'on' : 'off',
  };
}

function rowProblems(row: DeviceRow, view: NodeView): Problem[] {
  const problems: Problem[] = [];
  const vfio = row.vfioManager;
  if (vfio && (row.driver !== vfio.targetDriver || vfio.phase === 'binding')) {
    const host = row.holders.filter((h) => !h.vm);
    problems.push({
      kind: 'vfio-not-bound',
      severity: 'error',
      subject: row.address,
      message: `vfio-manager wants ${row.address} on ${vfio.targetDriver} (${vfio.phase}) but it is on ${row.driver ?? 'no driver'}`,
      fix:
        host.length > 0
          ? `stop ${host.map((h) => `${h.comm} (pid ${h.pid})`).join(', ')}, which hold(s) it, then: vfio-manager bind --device ${row.address}`
          : `vfio-manager bind --device ${row.address} (its log says why the last bind failed)`,
    });
  }
  if (row.advertised?.health === 'Unhealthy') {
    problems.push({
      kind: 'unhealthy',
      severity: 'warning',
      subject: `${row.advertised.resource}=${row.advertised.id}`,
      message: `${row.address} is advertised Unhealthy: ${row.advertised.reason ?? 'no reason recorded'}`,
      fix: `bring it back on VFIO (vfio-manager bind --device ${row.address}); the plugin marks it Healthy when its node returns`,
    });
  }
  if (view.holdersKnown && row.allocations.length > 0 && !row.holders.some((h) => h.vm)) {
    const pods = row.allocations.map((a) => `${a.podUid}/${a.container}`).join(', ');
    problems.push({
      kind: 'allocated-not-held',
      severity: 'warning',
      subject: row.address,
      message: `${row.address} is allocated to ${pods} but no VM holds it: the pod is starting, gone, or failed to start its VM`,
      fix: `kubectl get pods -A -o wide | grep <pod>; a pod that is gone frees it when the kubelet drops its checkpoint entry`,
    });
  }
  const cc = row.cc;
  if (cc?.desired) {
    const expect = expectedModes(row, cc.desired);
    const wrong =
      (expect.cc !== undefined && cc.cc !== null && cc.cc !== expect.cc) ||
      (cc.ppcie !== null && expect.ppcie !== cc.ppcie);
    if (wrong) {
      problems.push({
        kind: 'mode-differs',
        severity: 'error',
        subject: row.address,
        message: `${row.address} is in ${describeCc(cc)} but the node asks for ${cc.desired}`,
        fix: 'see cc-manager’s events (kubectl describe node) and its log; cc-manager status shows the mode it reads now',
      });
    }
  }
  return problems;
}

export function describeCc(cc: { cc: string | null; ppcie: string | null }): string {
  return [cc.cc === null ? undefined : `cc ${cc.cc}`, cc.ppcie === null ? undefined : `ppcie ${cc.ppcie}`]
    .filter(Boolean)
    .join(', ');
}
