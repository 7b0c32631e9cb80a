import { GpuccError, isLabelValue, parseLabelKey } from '@gpucc/hal';
import type { Logger } from '../log/index.js';
import type { BackoffSettings } from '../loop/backoff.js';
import type { Delay } from '../loop/delay.js';
import { createAuthenticator } from './auth.js';
import type { KubeConfig } from './config.js';
import { kubeError } from './errors.js';
import { type NodeObject, toKubeNode } from './node-object.js';
import { createTransport } from './transport.js';
import type { KubeNode, LabelChanges, NodeEvent, NodeUpdate } from './types.js';
import { watchNode } from './watch.js';

export interface NodeClientOptions {
  nodeName: string;
  config: KubeConfig;
  logger: Logger;
  /** The binary: event source, field manager of patches. */
  component: string;
  /** Events about cluster-scoped objects (a Node) live in `default`, as the kubelet's do. */
  eventNamespace?: string;
  /** Deadline per request (not per watch); default 30 s. */
  requestTimeoutMs?: number;
}

export interface WatchOptions {
  /** Called with the node at the first read, at each relist and at each watch event. */
  onNode: (node: KubeNode, update: NodeUpdate) => void;
  /** Stops the watch; `watch` resolves once it has. */
  signal: AbortSignal;
  /** Waits between failed attempts; tests inject one that does not sleep. */
  delay?: Delay;
  backoff?: BackoffSettings;
  /** Asked of the server per watch request (it ends the stream then; we resume from the last version). */
  timeoutSeconds?: number;
}

export interface NodeClient {
  readonly nodeName: string;
  getNode(): Promise<KubeNode>;
  /** One JSON merge patch of exactly these labels (null removes one); nothing is sent when empty. */
  patchLabels(changes: LabelChanges): Promise<KubeNode | undefined>;
  /** Creates a core/v1 Event about this node. */
  createEvent(event: NodeEvent): Promise<void>;
  /** Watches only this node (fieldSelector metadata.name), relisting on 410 Gone, until the signal aborts. */
  watch(options: WatchOptions): Promise<void>;
}

const MAX_EVENT_MESSAGE = 1024; // events.k8s.io validation limit for `note`; core/v1 readers truncate too

/** Label keys and values checked before anything is sent: a bad one is a bug or bad input, never a request. */
export function validateLabelChanges(changes: LabelChanges): void {
  for (const [key, value] of Object.entries(changes)) {
    parseLabelKey(key);
    if (value !== null && !isLabelValue(value)) {
      throw new GpuccError('ERR_GPUCC_INVALID_LABEL_VALUE', `invalid label value ${JSON.stringify(value)} for ${key}`, {
        hint: 'a label value is empty or at most 63 characters, alphanumeric at both ends with only - _ . inside',
        details: { key, value },
      });
    }
  }
}

export function createNodeClient(options: NodeClientOptions): NodeClient {
  const { nodeName, config, logger, component } = options;
  const api = createTransport(config, createAuthenticator(config.credentials));
  const nodePath = `/api/v1/nodes/${encodeURIComponent(nodeName)}`;
  const namespace = options.eventNamespace ?? 'default';
  const timeoutMs = options.requestTimeoutMs ?? 30_000;
  let lastUid: string | undefined;
  let eventSeq = 0;

  /** Bounds a request: a hung API server must not hang a reconcile (the request is left to finish alone). */
  async function bounded<T>(what: string, request: (signal: AbortSignal) => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const abandon = new AbortController();
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new Error(`no answer within ${timeoutMs} ms`));
        abandon.abort(); // and the connection is closed, not left to a hung server
      }, timeoutMs);
    });
    const pending = request(abandon.signal);
    try {
      return await Promise.race([pending, deadline]);
    } catch (error) {
      pending.catch(() => {});
      throw kubeError(what, error, { node: nodeName });
    } finally {
      clearTimeout(timer);
    }
  }

  const remember = (node: KubeNode) => {
    if (node.uid) lastUid = node.uid;
    return node;
  };

  const client: NodeClient = {
    nodeName,

    async getNode() {
      return remember(
        toKubeNode(
          await bounded(`get node ${nodeName}`, (signal) =>
            api.request<NodeObject>({ method: 'GET', path: nodePath, signal }),
          ),
        ),
      );
    },

    async patchLabels(changes) {
      if (Object.keys(changes).length === 0) return undefined;
      validateLabelChanges(changes);
      // A JSON merge patch (docs/facts/kubernetes-api-client.md#json-merge-patch): null removes a label.
      const node = await bounded(`patch labels of node ${nodeName}`, (signal) =>
        api.request<NodeObject>({
          method: 'PATCH',
          path: nodePath,
          query: { fieldManager: component },
          body: { metadata: { labels: changes } },
          contentType: 'application/merge-patch+json',
          signal,
        }),
      );
      logger.debug({ event: 'kube.labels.patched', node: nodeName, changes }, 'node labels patched');
      return remember(toKubeNode(node));
    },

    async createEvent(event) {
      const now = new Date();
      // client-go's naming: <object>.<unix nanoseconds in hex>; the sequence keeps two in one ms apart.
      const stamp = (BigInt(now.getTime()) * 1_000_000n + BigInt(eventSeq++ % 1_000_000)).toString(16);
      const message =
        event.message.length > MAX_EVENT_MESSAGE ? `${event.message.slice(0, MAX_EVENT_MESSAGE - 1)}…` : event.message;
      const body = {
        metadata: { name: `${nodeName}.${stamp}`, namespace },
        // The kubelet refers to its node with uid = name; the real uid when we have read it.
        involvedObject: { apiVersion: 'v1', kind: 'Node', name: nodeName, uid: lastUid ?? nodeName },
        reason: event.reason,
        message,
        type: event.type,
        action: event.action ?? event.reason,
        source: { component, host: nodeName },
        reportingComponent: `gpucc/${component}`,
        reportingInstance: `${component}-${nodeName}`,
        firstTimestamp: now.toISOString(),
        lastTimestamp: now.toISOString(),
        count: 1,
      };
      await bounded(`create event ${event.reason} for node ${nodeName}`, (signal) =>
        api.request({
          method: 'POST',
          path: `/api/v1/namespaces/${encodeURIComponent(namespace)}/events`,
          body,
          signal,
        }),
      );
      logger.debug({ event: 'kube.event.created', reason: event.reason, type: event.type }, event.message);
    },

    watch(watchOptions) {
      return watchNode({
        ...watchOptions,
        nodeName,
        logger,
        getNode: () => client.getNode(),
        watcher: api,
        onNode: (node, update) => watchOptions.onNode(remember(node), update),
      });
    },
  };
  return client;
}
