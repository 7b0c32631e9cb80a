// The Kubernetes node client, a subpath of its own (`@gpucc/daemon/kube`): @kubernetes/client-node
// takes most of a second to load, so only binaries that talk to the API server load it, lazily.
export { loadKubeConfig } from './config.js';
export { kubeError, serverMessageOf, statusCodeOf } from './errors.js';
export {
  createNodeClient,
  type NodeClient,
  type NodeClientOptions,
  toKubeNode,
  validateLabelChanges,
  type WatchOptions,
} from './node-client.js';
export type { KubeNode, LabelChanges, NodeEvent, NodeUpdate } from './types.js';
export { type WatchNodeOptions, watchNode } from './watch.js';
