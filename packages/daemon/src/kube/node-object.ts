import type { KubeNode } from './types.js';

/** The fields of a Node object gpucc reads, as the API server sends them (GET, PATCH, watch events). */
export interface NodeObject {
  metadata?: { name?: string; uid?: string; resourceVersion?: string; labels?: Record<string, string> };
}

export function toKubeNode(node: NodeObject | null | undefined): KubeNode {
  const meta = node?.metadata ?? {};
  return {
    name: meta.name ?? '',
    uid: meta.uid ?? '',
    resourceVersion: meta.resourceVersion ?? '',
    labels: { ...(meta.labels ?? {}) },
  };
}
