import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { DaemonSet } from 'kubernetes-models/apps/v1';
import { ClusterRole, ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { Namespace, ServiceAccount } from 'kubernetes-models/v1';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

const DEPLOY = path.resolve(import.meta.dirname, '../deploy/kubernetes');
const OPERANDS = ['cc-manager', 'vfio-manager', 'kata-manager', 'sandbox-device-plugin'];
const PORTS: Record<string, number> = {
  'cc-manager': 9471,
  'vfio-manager': 9472,
  'kata-manager': 9473,
  'sandbox-device-plugin': 9474,
};

type Obj = { kind: string; apiVersion: string; metadata: { name: string }; [k: string]: unknown };

function render(dir: string): Obj[] {
  const text = execFileSync('kubectl', ['kustomize', path.join(DEPLOY, dir)], { encoding: 'utf8' });
  return parseAllDocuments(text).map((d) => d.toJSON() as Obj);
}

const MODELS: Record<string, new (o: never) => { validate(): void }> = {
  'v1/Namespace': Namespace,
  'v1/ServiceAccount': ServiceAccount,
  'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding,
  'apps/v1/DaemonSet': DaemonSet,
};

// biome-ignore lint/suspicious/noExplicitAny: walking rendered manifests
const daemonSet = (objects: Obj[], operand: string): any =>
  objects.find((o) => o.kind === 'DaemonSet' && o.metadata.name === `gpucc-${operand}`);

describe.each(['base', 'overlays/sev-snp', 'overlays/tdx'])('kubernetes manifests: %s', (dir) => {
  const objects = render(dir);

  it('every object validates against the Kubernetes API schemas (kubernetes-models 5.1.0)', () => {
    for (const object of objects) {
      const Model = MODELS[`${object.apiVersion}/${object.kind}`];
      expect(Model, `${object.apiVersion} ${object.kind}`).toBeDefined();
      expect(() => new Model!(object as never).validate(), `${object.kind}/${object.metadata.name}`).not.toThrow();
    }
  });

  it('one DaemonSet per operand, scheduled by GPU Operator’s deploy label, probed on /healthz and /readyz', () => {
    for (const operand of OPERANDS) {
      const ds = daemonSet(objects, operand);
      expect(ds, operand).toBeDefined();
      const pod = ds.spec.template.spec;
      expect(pod.nodeSelector[`nvidia.com/gpu.deploy.${operand}`]).toBe('true');
      const container = pod.containers[0];
      expect(container.args).toEqual(['run']);
      expect(container.livenessProbe.httpGet.path).toBe('/healthz');
      expect(container.readinessProbe.httpGet.path).toBe('/readyz');
      expect(container.ports[0].containerPort).toBe(PORTS[operand]);
      const env = Object.fromEntries(container.env.map((e: { name: string; value?: string }) => [e.name, e.value]));
      expect(env.GPUCC_HOST_ROOT).toBe('/host');
      expect(env.GPUCC_METRICS_ADDRESS).toBe(`:${PORTS[operand]}`);
      expect(container.resources.requests).toBeDefined();
      expect(container.securityContext.readOnlyRootFilesystem).toBe(true);
    }
    if (dir !== 'base') {
      const label = dir.endsWith('sev-snp')
        ? 'amd.feature.node.kubernetes.io/snp'
        : 'intel.feature.node.kubernetes.io/tdx';
      for (const operand of OPERANDS)
        expect(daemonSet(objects, operand).spec.template.spec.nodeSelector[label]).toBe('true');
      const env = daemonSet(objects, 'cc-manager').spec.template.spec.containers[0].env;
      expect(env).toContainEqual({ name: 'DEFAULT_CC_MODE', value: 'on' });
    }
  });

  it('least privilege: no capability for kata-manager and the device plugin, only SYS_ADMIN for vfio-manager', () => {
    for (const operand of ['kata-manager', 'sandbox-device-plugin']) {
      const sc = daemonSet(objects, operand).spec.template.spec.containers[0].securityContext;
      expect(sc.privileged ?? false).toBe(false);
      expect(sc.allowPrivilegeEscalation).toBe(false);
      expect(sc.capabilities).toEqual({ drop: ['ALL'] });
    }
    const vfio = daemonSet(objects, 'vfio-manager').spec.template.spec.containers[0].securityContext;
    expect(vfio.capabilities).toEqual({ drop: ['ALL'], add: ['SYS_ADMIN'] });
    for (const operand of ['vfio-manager', 'kata-manager', 'sandbox-device-plugin']) {
      const pod = daemonSet(objects, operand).spec.template.spec;
      expect(pod.serviceAccountName).toBe('gpucc-operand');
    }
    const sa = objects.find((o) => o.kind === 'ServiceAccount' && o.metadata.name === 'gpucc-operand') as {
      automountServiceAccountToken?: boolean;
    };
    expect(sa.automountServiceAccountToken).toBe(false);
  });

  it('every host path an operand writes is mounted writable (sysfs, the NVIDIA unbind lock in /proc)', () => {
    const writable = (operand: string, mountPath: string) => {
      const mounts = daemonSet(objects, operand).spec.template.spec.containers[0].volumeMounts as Array<{
        mountPath: string;
        readOnly?: boolean;
      }>;
      const mount = mounts.find((m) => mountPath === m.mountPath || mountPath.startsWith(`${m.mountPath}/`));
      return mount !== undefined && mount.readOnly !== true;
    };
    expect(writable('vfio-manager', '/host/sys/bus/pci/drivers/vfio-pci/bind')).toBe(true);
    expect(writable('vfio-manager', '/host/proc/driver/nvidia/gpus/0000:13:00.0/unbindLock')).toBe(true);
    expect(writable('vfio-manager', '/host/var/lib/gpucc/vfio-manager.json')).toBe(true);
    expect(writable('cc-manager', '/host/var/lib/gpucc/cc-manager.json')).toBe(true);
    expect(writable('cc-manager', '/host/var/lib/gpucc/cc-mode.json')).toBe(true);
  });

  it('the device plugin reads the mode record of cc-manager (read-only), so it follows the CC topology rules', () => {
    const mounts = daemonSet(objects, 'sandbox-device-plugin').spec.template.spec.containers[0].volumeMounts as Array<{
      mountPath: string;
      readOnly?: boolean;
    }>;
    expect(mounts).toContainEqual({ name: 'host-var-lib-gpucc', mountPath: '/host/var/lib/gpucc', readOnly: true });
  });

  it('RBAC: get/list/watch/patch nodes and create events, for cc-manager only, nothing else', () => {
    const roles = objects.filter((o) => o.kind === 'ClusterRole') as unknown as Array<{
      rules: Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }>;
    }>;
    expect(roles).toHaveLength(1);
    const grants = roles[0]!.rules.flatMap((r) => r.resources.map((res) => `${res}:${[...r.verbs].sort().join(',')}`));
    expect(new Set(grants)).toEqual(new Set(['nodes:get,list,patch,watch', 'events:create,patch']));
    const bindings = objects.filter((o) => o.kind === 'ClusterRoleBinding') as unknown as Array<{
      subjects: Array<{ name: string }>;
    }>;
    expect(bindings.flatMap((b) => b.subjects.map((s) => s.name))).toEqual(['cc-manager']);
  });
});
