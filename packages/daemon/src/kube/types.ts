/** The parts of this node's Node object that gpucc reads: plain data, no client types. */
export interface KubeNode {
  name: string;
  uid: string;
  resourceVersion: string;
  labels: Readonly<Record<string, string>>;
}

/** A label change for a JSON merge patch: a value sets the label, null removes it. */
export type LabelChanges = Readonly<Record<string, string | null>>;

export interface NodeEvent {
  type: 'Normal' | 'Warning';
  /** UpperCamelCase, stable: what dashboards and `kubectl get events --field-selector reason=` use. */
  reason: string;
  message: string;
  /** What was done (events.k8s.io `action`); the reason when absent. */
  action?: string;
}

/** Why the watch handed over a node: the first read or a relist (410 Gone, restart), or a watch event. */
export type NodeUpdate = 'relist' | 'added' | 'modified';
