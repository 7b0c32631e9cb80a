import { randomUUID } from 'node:crypto';
import type { NodeSpec } from '../node/spec.js';

/** Kubernetes objects as plain JSON, the way the API server stores and serves them. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export interface ObjectMeta extends JsonObject {
  name: string;
  uid: string;
  resourceVersion: string;
  creationTimestamp: string;
}

/** The labels the GPU Operator and NFD put on a kata-mode GPU node, so operand pausing has something to do. */
export function operatorLabels(tee: NodeSpec['tee']): Record<string, string> {
  return {
    ...(tee === 'sev-snp' ? { 'amd.feature.node.kubernetes.io/snp': 'true' } : {}),
    ...(tee === 'tdx' ? { 'intel.feature.node.kubernetes.io/tdx': 'true' } : {}),
    'nvidia.com/gpu.present': 'true',
    'nvidia.com/gpu.workload.config': 'vm-passthrough',
    'nvidia.com/gpu.deploy.cc-manager': 'true',
    'nvidia.com/gpu.deploy.vfio-manager': 'true',
    'nvidia.com/gpu.deploy.sandbox-validator': 'true',
    'nvidia.com/gpu.deploy.kata-sandbox-device-plugin': 'true',
    'nvidia.com/gpu.deploy.sandbox-device-plugin': 'false',
  };
}

export function newNodeObject(
  name: string,
  node: Pick<NodeSpec, 'tee' | 'profile' | 'kernelRelease'>,
  options: { operatorLabels: boolean; resourceVersion: number; now?: Date },
): JsonObject {
  const now = (options.now ?? new Date()).toISOString().replace(/\.\d{3}Z$/, 'Z');
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name,
      uid: randomUUID(),
      resourceVersion: String(options.resourceVersion),
      creationTimestamp: now,
      labels: {
        'kubernetes.io/arch': 'amd64',
        'kubernetes.io/hostname': name,
        'kubernetes.io/os': 'linux',
        ...(options.operatorLabels ? operatorLabels(node.tee) : {}),
      },
      annotations: { 'gpucc.sim/profile': node.profile },
    },
    spec: {},
    status: {
      conditions: [
        {
          type: 'Ready',
          status: 'True',
          reason: 'KubeletReady',
          message: 'kubelet is posting ready status',
          lastHeartbeatTime: now,
          lastTransitionTime: now,
        },
      ],
      nodeInfo: {
        architecture: 'amd64',
        bootID: randomUUID(),
        containerRuntimeVersion: 'containerd://2.1.0',
        kernelVersion: node.kernelRelease,
        kubeProxyVersion: '',
        kubeletVersion: 'v1.33.0',
        machineID: randomUUID().replaceAll('-', ''),
        operatingSystem: 'linux',
        osImage: `gpucc simulated node (${node.profile})`,
        systemUUID: randomUUID(),
      },
    },
  };
}

/** The `Status` object the API server answers errors with (and sends in watch ERROR events). */
export function statusObject(code: number, reason: string, message: string): JsonObject {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

export function metaOf(object: JsonObject): ObjectMeta {
  return object.metadata as ObjectMeta;
}

export function labelsOf(object: JsonObject): Record<string, string> {
  const labels = (object.metadata as JsonObject | undefined)?.labels;
  return labels && typeof labels === 'object' && !Array.isArray(labels) ? (labels as Record<string, string>) : {};
}
