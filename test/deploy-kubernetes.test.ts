// deploy/kubernetes rendered with `kubectl kustomize`, as a cluster admin reads it: API schemas, where each
// DaemonSet schedules (against the GPU Operator's node labels and the doctor's NFD feature), what cc-manager
// pauses, privileges, host paths, tolerations, RBAC and the admission policy, images and rollouts.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  ABSENT_MEANINGS,
  type AbsentMeaning,
  DOCTOR_PASSED_LABEL,
  OPERAND_LABELS,
  pausePatch,
  restorePatch,
} from '@gpucc/cc-manager';
import { evaluate } from '@marcbachmann/cel-js';
import {
  ValidatingAdmissionPolicy,
  ValidatingAdmissionPolicyBinding,
} from 'kubernetes-models/admissionregistration.k8s.io/v1';
import { DaemonSet } from 'kubernetes-models/apps/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { ClusterRole, ClusterRoleBinding, Role, RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { Namespace, ResourceQuota, ServiceAccount } from 'kubernetes-models/v1';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { DAEMON_NODE_OPTIONS } from '../scripts/bundle.mjs';

const DEPLOY = path.resolve(import.meta.dirname, '../deploy/kubernetes');
const OPERANDS = ['cc-manager', 'vfio-manager', 'kata-manager', 'sandbox-device-plugin'] as const;
type Operand = (typeof OPERANDS)[number];
/** The operands that use the GPUs, hence are paused around a switch; kata-manager only writes CDI specs. */
const PAUSED_OPERANDS: readonly Operand[] = ['vfio-manager', 'sandbox-device-plugin'];
const PORTS: Record<Operand, number> = {
  'cc-manager': 9471,
  'vfio-manager': 9472,
  'kata-manager': 9473,
  'sandbox-device-plugin': 9474,
};
const OVERLAYS = ['overlays/standalone', 'overlays/gpu-operator'] as const;

type Obj = {
  kind: string;
  apiVersion: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [k: string]: unknown;
};
type Labels = Record<string, string>;

function render(dir: string): Obj[] {
  const text = execFileSync('kubectl', ['kustomize', path.join(DEPLOY, dir)], { encoding: 'utf8' });
  return parseAllDocuments(text).map((d) => d.toJSON() as Obj);
}

const MODELS: Record<string, new (o: never) => { validate(): void }> = {
  'v1/Namespace': Namespace,
  'v1/ResourceQuota': ResourceQuota,
  'v1/ServiceAccount': ServiceAccount,
  'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding,
  'rbac.authorization.k8s.io/v1/Role': Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
  'admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy': ValidatingAdmissionPolicy,
  'admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding': ValidatingAdmissionPolicyBinding,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'apps/v1/DaemonSet': DaemonSet,
};

// biome-ignore lint/suspicious/noExplicitAny: walking rendered manifests
const daemonSet = (objects: Obj[], operand: string): any =>
  objects.find((o) => o.kind === 'DaemonSet' && o.metadata.name === `gpucc-${operand}`);
// biome-ignore lint/suspicious/noExplicitAny: walking rendered manifests
const podOf = (objects: Obj[], operand: string): any => daemonSet(objects, operand).spec.template.spec;
// biome-ignore lint/suspicious/noExplicitAny: walking rendered manifests
const containerOf = (objects: Obj[], operand: string): any => podOf(objects, operand).containers[0];
const envOf = (objects: Obj[], operand: string): Record<string, string | undefined> =>
  Object.fromEntries(containerOf(objects, operand).env.map((e: { name: string; value?: string }) => [e.name, e.value]));

interface Requirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values?: string[];
}

/** What the DaemonSet controller asks of a node: the nodeSelector and the required node affinity. */
function schedulesOn(objects: Obj[], operand: string, labels: Labels): boolean {
  const pod = podOf(objects, operand);
  const selector = Object.entries((pod.nodeSelector ?? {}) as Labels);
  if (!selector.every(([k, v]) => labels[k] === v)) return false;
  const terms = (pod.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ??
    []) as Array<{ matchExpressions: Requirement[] }>;
  const matches = (r: Requirement) => {
    const v = labels[r.key];
    switch (r.operator) {
      case 'In':
        return v !== undefined && r.values!.includes(v);
      case 'NotIn':
        return v === undefined || !r.values!.includes(v);
      case 'Exists':
        return v !== undefined;
      case 'DoesNotExist':
        return v === undefined;
    }
  };
  return terms.length === 0 || terms.some((t) => t.matchExpressions.every(matches));
}

const scheduled = (objects: Obj[], labels: Labels) => OPERANDS.filter((o) => schedulesOn(objects, o, labels));

/** cc-manager's pause configuration as the overlay sets it (its env), read by cc-manager's own parser rules. */
function operandLabelsOf(objects: Obj[]): { keys: string[]; absent: AbsentMeaning } {
  const env = envOf(objects, 'cc-manager');
  const absent = (env.GPUCC_OPERAND_LABELS_ABSENT ?? 'not-deployed') as AbsentMeaning;
  expect(ABSENT_MEANINGS).toContain(absent);
  return { keys: (env.GPUCC_OPERAND_LABELS ?? OPERAND_LABELS.join(',')).split(','), absent };
}

/**
 * The GPU Operator's node labels per workload config, from NVIDIA/gpu-operator controllers/state_manager.go
 * (gpuStateLabels; getEffectiveStateLabels swaps sandbox-device-plugin for kata-sandbox-device-plugin on
 * vm-passthrough in Kata mode), commit a22dbf67 (2026-08-21). docs: deploy/kubernetes/overlays/gpu-operator/README.md.
 */
const D = 'nvidia.com/gpu.deploy.';
const OPERATOR_LABELS: Record<string, string[]> = {
  container: [
    'driver',
    'gpu-feature-discovery',
    'container-toolkit',
    'device-plugin',
    'dcgm',
    'dcgm-exporter',
    'node-status-exporter',
    'operator-validator',
    'client',
  ],
  'vm-passthrough (kata)': [
    'kata-sandbox-device-plugin',
    'sandbox-validator',
    'vfio-manager',
    'kata-manager',
    'cc-manager',
    'client',
  ],
  'vm-passthrough (kubevirt)': [
    'sandbox-device-plugin',
    'sandbox-validator',
    'vfio-manager',
    'kata-manager',
    'cc-manager',
    'client',
  ],
  'vm-vgpu': [
    'sandbox-device-plugin',
    'vgpu-manager',
    'vgpu-device-manager',
    'sandbox-validator',
    'cc-manager',
    'client',
  ],
};
const operatorNode = (config: string): Labels =>
  Object.fromEntries(OPERATOR_LABELS[config]!.map((l) => [`${D}${l}`, 'true']));

/** The Operator's Helm value that deploys the operand behind each deploy label (deployments/gpu-operator/values.yaml). */
const HELM_KEY_OF_LABEL: Record<string, string> = {
  [`${D}cc-manager`]: 'ccManager',
  [`${D}vfio-manager`]: 'vfioManager',
  [`${D}kata-manager`]: 'kataManager',
  [`${D}kata-sandbox-device-plugin`]: 'kataSandboxDevicePlugin',
  [`${D}sandbox-device-plugin`]: 'sandboxDevicePlugin',
};

describe.each(OVERLAYS)('kubernetes manifests: %s', (dir) => {
  const objects = render(dir);

  it('every object validates against the Kubernetes API schemas (kubernetes-models 5.1.0); no Namespace in it', () => {
    for (const object of objects) {
      const Model = MODELS[`${object.apiVersion}/${object.kind}`];
      expect(Model, `${object.apiVersion} ${object.kind}`).toBeDefined();
      expect(() => new Model!(object as never).validate(), `${object.kind}/${object.metadata.name}`).not.toThrow();
    }
    // `kubectl delete -k` of an overlay must not take the namespace (and what else lives there) with it
    expect(objects.filter((o) => o.kind === 'Namespace')).toEqual([]);
  });

  it('one DaemonSet per operand: probed on /healthz (startup, liveness) and /readyz, env and port as the binary expects', () => {
    for (const operand of OPERANDS) {
      const container = containerOf(objects, operand);
      expect(container.args).toEqual(['run']);
      expect(container.startupProbe.httpGet.path).toBe('/healthz');
      expect(container.livenessProbe.httpGet.path).toBe('/healthz');
      expect(container.readinessProbe.httpGet.path).toBe('/readyz');
      expect(container.ports[0].containerPort).toBe(PORTS[operand]);
      const env = envOf(objects, operand);
      expect(env.GPUCC_HOST_ROOT).toBe('/host');
      expect(env.GPUCC_METRICS_ADDRESS).toBe(`:${PORTS[operand]}`);
      // the daemons' Node options: a small young generation (scripts/bundle.mjs)
      expect(env.NODE_OPTIONS).toBe(DAEMON_NODE_OPTIONS);
      expect(container.resources.requests).toBeDefined();
    }
  });

  it('images: a registry path pinned by digest (the release sets both), pulled IfNotPresent', () => {
    for (const operand of OPERANDS) {
      const container = containerOf(objects, operand);
      expect(container.image).toMatch(
        new RegExp(`^[a-z0-9.-]+(:\\d+)?/[a-z0-9/-]*gpucc/${operand}@sha256:[0-9a-f]{64}$`),
      );
      expect(container.imagePullPolicy).toBe('IfNotPresent');
    }
  });

  it('rollout: the GPU-resetting operands OnDelete; the others one node at a time, each ready 10 s first', () => {
    for (const operand of ['cc-manager', 'vfio-manager'])
      expect(daemonSet(objects, operand).spec.updateStrategy).toEqual({ type: 'OnDelete' });
    for (const operand of ['kata-manager', 'sandbox-device-plugin']) {
      const ds = daemonSet(objects, operand).spec;
      expect(ds.updateStrategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } });
      expect(ds.minReadySeconds).toBeGreaterThanOrEqual(10);
    }
  });

  it('least privilege: nothing privileged, no escalation, seccomp RuntimeDefault, capabilities as argued', () => {
    const added: Record<Operand, string[]> = {
      'cc-manager': ['SYS_ADMIN', 'SYS_RAWIO'],
      'vfio-manager': [],
      'kata-manager': [],
      'sandbox-device-plugin': [],
    };
    for (const operand of OPERANDS) {
      const pod = podOf(objects, operand);
      const sc = containerOf(objects, operand).securityContext;
      expect(sc.privileged ?? false, operand).toBe(false);
      expect(sc.allowPrivilegeEscalation, operand).toBe(false);
      expect(sc.readOnlyRootFilesystem, operand).toBe(true);
      expect(sc.seccompProfile, operand).toEqual({ type: 'RuntimeDefault' });
      expect(pod.securityContext.seccompProfile, operand).toEqual({ type: 'RuntimeDefault' });
      expect(sc.capabilities.drop, operand).toEqual(['ALL']);
      expect(sc.capabilities.add ?? [], operand).toEqual(added[operand]);
      expect(pod.hostNetwork ?? false).toBe(false);
      expect(pod.hostPID ?? false).toBe(false);
      expect(pod.hostIPC ?? false).toBe(false);
    }
    for (const operand of ['vfio-manager', 'kata-manager', 'sandbox-device-plugin'])
      expect(podOf(objects, operand).serviceAccountName).toBe('gpucc-operand');
    const sa = objects.find((o) => o.kind === 'ServiceAccount' && o.metadata.name === 'gpucc-operand') as {
      automountServiceAccountToken?: boolean;
    };
    expect(sa.automountServiceAccountToken).toBe(false);
  });

  it('host paths: only those each operand uses, each with its type; writable only where it writes', () => {
    const expected: Record<Operand, string[]> = {
      'cc-manager': [
        '/sys Directory rw',
        '/run/nvidia/validations DirectoryOrCreate rw',
        '/var/lib/gpucc DirectoryOrCreate rw',
        '/var/lib/kubelet/device-plugins Directory ro',
      ],
      'vfio-manager': [
        '/sys Directory rw',
        '/dev Directory ro',
        '/run/nvidia/validations DirectoryOrCreate rw',
        '/var/lib/gpucc DirectoryOrCreate rw',
        '/lib/modules Directory ro',
        '/proc/driver Directory rw',
      ],
      'kata-manager': [
        '/sys Directory ro',
        '/dev Directory ro',
        '/run/cdi DirectoryOrCreate rw',
        '/usr/share/misc Directory ro',
      ],
      'sandbox-device-plugin': [
        '/sys Directory ro',
        '/dev Directory ro',
        '/var/lib/kubelet/device-plugins Directory rw',
        '/usr/share/misc Directory ro',
        // its record of what it advertises, health included (gpucc status)
        '/run/gpucc DirectoryOrCreate rw',
        // cc-manager's mode record (cc-mode.json): the CC topology rule in force
        '/var/lib/gpucc DirectoryOrCreate ro',
      ],
    };
    for (const operand of OPERANDS) {
      const pod = podOf(objects, operand);
      const mounts = pod.containers[0].volumeMounts as Array<{ name: string; mountPath: string; readOnly?: boolean }>;
      const volumes = new Map(
        (pod.volumes as Array<{ name: string; hostPath: { path: string; type?: string } }>).map((v) => [v.name, v]),
      );
      const seen = mounts.map((m) => {
        const { path: hostPath, type } = volumes.get(m.name)!.hostPath;
        expect(m.mountPath, `${operand} mounts ${hostPath} under the host root`).toBe(`/host${hostPath}`);
        return `${hostPath} ${type ?? 'untyped'} ${m.readOnly ? 'ro' : 'rw'}`;
      });
      expect(seen.sort(), operand).toEqual([...expected[operand]].sort());
      expect(volumes.size, `${operand}: no volume left unmounted`).toBe(mounts.length);
    }
  });

  it('tolerations: the GPU nodes’ NoSchedule taint, as NVIDIA’s operands tolerate it, and no other', () => {
    for (const operand of OPERANDS)
      expect(podOf(objects, operand).tolerations, operand).toEqual([
        { key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' },
      ]);
  });

  it('RBAC: cc-manager alone reads and patches nodes, posts Events in "default" only; nothing else anywhere', () => {
    const grants = (kind: string) =>
      objects
        .filter((o) => o.kind === kind)
        .flatMap((o) =>
          (
            o as unknown as { rules: Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }> }
          ).rules.flatMap((r) =>
            r.resources.map(
              (res) => `${o.metadata.namespace ?? '*'}:${r.apiGroups.join('+')}:${res}:${[...r.verbs].sort()}`,
            ),
          ),
        );
    expect(grants('ClusterRole')).toEqual(['*::nodes:get,list,patch,watch']);
    expect(grants('Role')).toEqual(['default:+events.k8s.io:events:create,patch']);
    const subjects = objects
      .filter((o) => o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding')
      .flatMap((b) => (b as unknown as { subjects: Array<{ name: string; namespace: string }> }).subjects);
    expect(subjects).toEqual([
      { kind: 'ServiceAccount', name: 'cc-manager', namespace: 'gpucc-system' },
      { kind: 'ServiceAccount', name: 'cc-manager', namespace: 'gpucc-system' },
    ]);
  });

  it('admission: cc-manager may patch only its own node (the token’s node claim), only labels, only its labels', () => {
    const policy = objects.find((o) => o.kind === 'ValidatingAdmissionPolicy') as unknown as {
      metadata: { name: string };
      spec: {
        failurePolicy: string;
        matchConstraints: { resourceRules: Array<{ resources: string[]; operations: string[] }> };
        matchConditions: Array<{ expression: string }>;
        validations: Array<{ expression: string }>;
      };
    };
    const binding = objects.find((o) => o.kind === 'ValidatingAdmissionPolicyBinding') as unknown as {
      spec: { policyName: string; validationActions: string[] };
    };
    expect(binding.spec).toEqual({ policyName: policy.metadata.name, validationActions: ['Deny'] });
    expect(policy.spec.failurePolicy).toBe('Fail');
    expect(policy.spec.matchConstraints.resourceRules).toMatchObject([
      { resources: ['nodes'], operations: ['UPDATE'] },
    ]);
    // the user it matches is the service account the DaemonSet runs as, in the namespace it renders to
    const sa = objects.find(
      (o) => o.kind === 'ServiceAccount' && o.metadata.name === podOf(objects, 'cc-manager').serviceAccountName,
    )!;
    expect(policy.spec.matchConditions[0]!.expression).toContain(
      `'system:serviceaccount:${sa.metadata.namespace}:${sa.metadata.name}'`,
    );
    const rules = policy.spec.validations.map((v) => v.expression).join('\n');
    expect(rules).toContain("request.userInfo.extra['authentication.kubernetes.io/node-name']");
    expect(rules).toContain('object.metadata.name');
    expect(rules).toContain('object.spec == oldObject.spec');
    // every label cc-manager writes in this overlay (its pause labels, the CC state labels) is allowed
    for (const key of [...operandLabelsOf(objects).keys, 'nvidia.com/cc.mode.state', 'nvidia.com/cc.ready.state'])
      expect(
        [...rules.matchAll(/startsWith\('([^']+)'\)/g)].some((m) => key.startsWith(m[1]!)),
        key,
      ).toBe(true);
  });

  it('admission, evaluated (cel-js): own node and own labels pass; another node, no node claim, the spec or a foreign label are denied', () => {
    const policy = objects.find((o) => o.kind === 'ValidatingAdmissionPolicy') as unknown as {
      spec: {
        matchConditions: Array<{ expression: string }>;
        variables: Array<{ name: string; expression: string }>;
        validations: Array<{ expression: string; message: string }>;
      };
    };
    const sa = `system:serviceaccount:gpucc-system:${podOf(objects, 'cc-manager').serviceAccountName}`;
    type Node = { metadata: { name: string; labels?: Labels }; spec: Record<string, unknown> };
    const node = (name: string, labels: Labels = {}, spec: Record<string, unknown> = {}): Node => ({
      metadata: { name, labels: { 'kubernetes.io/hostname': name, ...labels } },
      spec: { podCIDR: '10.0.0.0/24', ...spec },
    });
    /** The API server's order: match conditions, then the variables, then every validation. */
    const admit = (
      user: string,
      claim: string | undefined,
      oldObject: Node,
      object: Node,
    ): string | 'allowed' | 'not matched' => {
      const request = {
        userInfo: {
          username: user,
          ...(claim ? { extra: { 'authentication.kubernetes.io/node-name': [claim] } } : {}),
        },
      };
      if (!policy.spec.matchConditions.every((c) => evaluate(c.expression, { request }) === true)) return 'not matched';
      const variables: Record<string, unknown> = {};
      for (const v of policy.spec.variables)
        variables[v.name] = evaluate(v.expression, { request, object, oldObject, variables });
      const failed = policy.spec.validations.find(
        (v) => evaluate(v.expression, { request, object, oldObject, variables }) !== true,
      );
      return failed ? failed.message : 'allowed';
    };
    const before = node('gpu-1', { 'nvidia.com/cc.mode': 'on', [`${D}vfio-manager`]: 'true' });
    const withLabels = (n: Node, labels: Labels) => ({
      ...n,
      metadata: { ...n.metadata, labels: { ...n.metadata.labels, ...labels } },
    });
    // its own node, its own labels: the state labels and a pause
    expect(admit(sa, 'gpu-1', before, withLabels(before, { 'nvidia.com/cc.mode.state': 'on' }))).toBe('allowed');
    expect(admit(sa, 'gpu-1', before, withLabels(before, { [`${D}vfio-manager`]: 'paused-for-cc-mode-change' }))).toBe(
      'allowed',
    );
    expect(admit(sa, 'gpu-1', before, withLabels(before, { 'gpucc.io/deploy.sandbox-device-plugin': 'true' }))).toBe(
      'allowed',
    );
    // another node, or a token without the node claim
    expect(admit(sa, 'gpu-2', before, withLabels(before, { 'nvidia.com/cc.mode.state': 'on' }))).toMatch(
      /only the node its pod runs on/,
    );
    expect(admit(sa, undefined, before, withLabels(before, { 'nvidia.com/cc.mode.state': 'on' }))).toMatch(
      /only the node its pod runs on/,
    );
    // the spec, or a label that is not its own (even on its own node)
    expect(admit(sa, 'gpu-1', before, { ...before, spec: { ...before.spec, unschedulable: true } })).toMatch(
      /never the node's spec/,
    );
    expect(admit(sa, 'gpu-1', before, withLabels(before, { 'node-role.kubernetes.io/control-plane': '' }))).toMatch(
      /changes only/,
    );
    const removed = { ...before, metadata: { name: 'gpu-1', labels: { 'nvidia.com/cc.mode': 'on' } } };
    expect(admit(sa, 'gpu-1', before, removed)).toMatch(/changes only/); // kubernetes.io/hostname removed
    // anyone else is not this policy's business
    expect(admit('system:node:gpu-1', 'gpu-1', before, withLabels(before, { x: 'y' }))).toBe('not matched');
  });

  it('metrics: every pod isolated; scrapes only from namespaces labelled gpucc.io/metrics-scraper; cc-manager out to the API server only', () => {
    const policies = objects.filter((o) => o.kind === 'NetworkPolicy') as unknown as Array<{
      metadata: { name: string };
      // biome-ignore lint/suspicious/noExplicitAny: rendered manifests
      spec: any;
    }>;
    const all = policies.find((p) => Object.keys(p.spec.podSelector).length === 0)!;
    expect(all.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(all.spec.egress ?? []).toEqual([]);
    expect(all.spec.ingress).toEqual([
      {
        from: [{ namespaceSelector: { matchLabels: { 'gpucc.io/metrics-scraper': 'true' } } }],
        ports: [{ protocol: 'TCP', port: 'metrics' }],
      },
    ]);
    for (const operand of OPERANDS) expect(containerOf(objects, operand).ports[0].name).toBe('metrics');
    const cc = policies.find((p) => p.spec.podSelector.matchLabels?.['app.kubernetes.io/name'] === 'gpucc-cc-manager')!;
    expect(cc.spec.egress.flatMap((e: { ports: Array<{ port: number }> }) => e.ports.map((p) => p.port))).toEqual([
      443, 6443,
    ]);
  });

  it('cc-manager pauses exactly the operands that use the GPUs, under the labels that select them here, and restores them', () => {
    const operands = operandLabelsOf(objects);
    const node: Labels =
      dir === 'overlays/standalone' ? { [DOCTOR_PASSED_LABEL]: 'true' } : operatorNode('vm-passthrough (kata)');
    expect(scheduled(objects, node)).toEqual([...OPERANDS]);
    const pause = pausePatch(node, operands);
    const paused = { ...node, ...pause };
    expect(scheduled(objects, paused)).toEqual(OPERANDS.filter((o) => !PAUSED_OPERANDS.includes(o)));
    const restored = { ...paused, ...restorePatch(paused, operands) };
    expect(scheduled(objects, restored)).toEqual([...OPERANDS]);
  });
});

describe('overlays/standalone: scheduled where `cc-manager doctor` passed', () => {
  const objects = render('overlays/standalone');

  it.each<[string, Labels, Operand[]]>([
    ['passed the doctor', { [DOCTOR_PASSED_LABEL]: 'true' }, [...OPERANDS]],
    ['failed the doctor', { [DOCTOR_PASSED_LABEL]: 'false' }, []],
    ['never ran it (no NFD feature)', {}, []],
    [
      'passed, vfio-manager opted out',
      { [DOCTOR_PASSED_LABEL]: 'true', 'gpucc.io/deploy.vfio-manager': 'false' },
      ['cc-manager', 'kata-manager', 'sandbox-device-plugin'],
    ],
    [
      'passed, GPU Operator labels only',
      { [DOCTOR_PASSED_LABEL]: 'false', ...operatorNode('vm-passthrough (kata)') },
      [],
    ],
  ])('a node that %s runs %j', (_what, labels, expected) => {
    expect(scheduled(objects, labels)).toEqual(expected);
  });

  it('the label is the one the doctor writes into its NFD feature file', () => {
    for (const operand of OPERANDS)
      expect(podOf(objects, operand).nodeSelector).toEqual({ [DOCTOR_PASSED_LABEL]: 'true' });
  });
});

describe('overlays/gpu-operator: selected by the labels the Operator sets per workload config', () => {
  const objects = render('overlays/gpu-operator');

  it.each<[string, Operand[]]>([
    ['container', []],
    ['vm-passthrough (kata)', [...OPERANDS]],
    // KubeVirt's device plugin serves that mode; CC needs Kata (the Operator runs cc-manager only in Kata mode)
    ['vm-passthrough (kubevirt)', ['cc-manager', 'vfio-manager', 'kata-manager']],
    ['vm-vgpu', ['cc-manager']],
  ])('%s: %j', (config, expected) => {
    expect(scheduled(objects, operatorNode(config))).toEqual(expected);
  });

  it('values-gpu-operator.yaml turns off each Operator operand whose deploy label one of ours selects, in Kata mode', () => {
    const values = parseYaml(
      readFileSync(path.join(DEPLOY, 'overlays/gpu-operator/values-gpu-operator.yaml'), 'utf8'),
    ) as Record<string, { enabled?: boolean; mode?: string }>;
    expect(values.sandboxWorkloads).toEqual({ enabled: true, mode: 'kata' });
    for (const operand of OPERANDS) {
      const keys = Object.keys(podOf(objects, operand).nodeSelector);
      expect(keys, operand).toHaveLength(1);
      const helmKey = HELM_KEY_OF_LABEL[keys[0]!];
      expect(helmKey, keys[0]).toBeDefined();
      expect(values[helmKey!]?.enabled, `${helmKey}.enabled`).toBe(false);
    }
  });

  it('on every workload config, the labels paused include each that selects a GPU-using operand there', () => {
    const { keys } = operandLabelsOf(objects);
    for (const config of Object.keys(OPERATOR_LABELS)) {
      const node = operatorNode(config);
      for (const operand of scheduled(objects, node)) {
        const selecting = Object.keys(podOf(objects, operand).nodeSelector);
        const isPaused = selecting.some((k) => keys.includes(k));
        expect(isPaused, `${config}: ${operand}`).toBe(PAUSED_OPERANDS.includes(operand));
      }
    }
  });
});

describe('namespace and node-events', () => {
  it('the Namespace (applied once, apart) allows the operands and admits system-node-critical by quota', () => {
    const objects = render('namespace');
    for (const object of objects)
      expect(() => new MODELS[`${object.apiVersion}/${object.kind}`]!(object as never).validate()).not.toThrow();
    const ns = objects.find((o) => o.kind === 'Namespace')!;
    expect(ns.metadata.name).toBe('gpucc-system');
    const quota = objects.find((o) => o.kind === 'ResourceQuota') as unknown as {
      metadata: { namespace: string };
      spec: { scopeSelector: { matchExpressions: Array<{ values: string[] }> } };
    };
    expect(quota.metadata.namespace).toBe('gpucc-system');
    expect(quota.spec.scopeSelector.matchExpressions[0]!.values).toEqual(['system-node-critical']);
    for (const dir of OVERLAYS)
      for (const operand of OPERANDS) {
        const ds = daemonSet(render(dir), operand);
        expect(ds.metadata.namespace).toBe(ns.metadata.name);
        expect(ds.spec.template.spec.priorityClassName).toBe('system-node-critical');
      }
  });
});
