// The Kubernetes node client, a subpath of its own (`@gpucc/daemon/kube`), loaded lazily by the
// binaries that talk to the API server: a few REST calls and a watch on node:https.
export { type Authenticator, createAuthenticator, type RequestAuth, readExecCredential } from './auth.js';
export {
  type ExecPlugin,
  inClusterConfig,
  type KubeConfig,
  type KubeCredentials,
  kubeConfigFrom,
  loadKubeConfig,
  SERVICE_ACCOUNT_DIR,
} from './config.js';
export { kubeError, serverMessageOf, statusCodeOf } from './errors.js';
export {
  createNodeClient,
  type NodeClient,
  type NodeClientOptions,
  validateLabelChanges,
  type WatchOptions,
} from './node-client.js';
export { type NodeObject, toKubeNode } from './node-object.js';
export {
  createTransport,
  KubeApiError,
  type KubeRequest,
  type KubeTransport,
  type WatchEventHandler,
} from './transport.js';
export type { KubeNode, LabelChanges, NodeEvent, NodeUpdate } from './types.js';
export { type WatchNodeOptions, watchNode } from './watch.js';
