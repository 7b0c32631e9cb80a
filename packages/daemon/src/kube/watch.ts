import { messageOf } from '@gpucc/hal';
import type { Logger } from '../log/index.js';
import { type BackoffSettings, backoffDelay } from '../loop/backoff.js';
import { abortableDelay, type Delay } from '../loop/delay.js';
import { kubeError, statusCodeOf } from './errors.js';
import { type NodeObject, toKubeNode } from './node-object.js';
import type { KubeTransport } from './transport.js';
import type { KubeNode, NodeUpdate } from './types.js';

export interface WatchNodeOptions {
  nodeName: string;
  logger: Logger;
  /** The relist: a GET of the node, whose resourceVersion the next watch starts from. */
  getNode: () => Promise<KubeNode>;
  watcher: Pick<KubeTransport, 'watch'>;
  onNode: (node: KubeNode, update: NodeUpdate) => void;
  signal: AbortSignal;
  delay?: Delay;
  backoff?: BackoffSettings;
  timeoutSeconds?: number;
}

const DEFAULT_BACKOFF: BackoffSettings = { initialMs: 1_000, maxMs: 30_000, factor: 2 };
// A stream the server closes this soon without a single event counts as a failure, so a server that
// accepts and hangs up at once is retried with backoff, not in a tight loop.
const SHORT_WATCH_MS = 1_000;

type WatchEnd = { end: 'closed' | 'gone' | 'aborted'; events: number };

/**
 * Keeps `onNode` fed with this node: GET it (the relist), then watch from its resourceVersion with
 * `fieldSelector=metadata.name=<node>`; resume from the last version seen when a stream ends; relist
 * on 410 Gone (as an HTTP status or an ERROR event); back off after failures. Resolves on abort.
 * Needs only get and watch on nodes (a GET, not a LIST, is the relist).
 */
export async function watchNode(options: WatchNodeOptions): Promise<void> {
  const { nodeName, logger, signal } = options;
  const delay = options.delay ?? abortableDelay;
  const backoff = options.backoff ?? DEFAULT_BACKOFF;
  const timeoutSeconds = options.timeoutSeconds ?? 300;
  let resourceVersion: string | undefined;
  let failures = 0;

  const seen = (node: KubeNode) => {
    if (node.resourceVersion) resourceVersion = node.resourceVersion;
  };

  while (!signal.aborted) {
    try {
      if (resourceVersion === undefined) {
        const node = await options.getNode();
        seen(node);
        logger.info({ event: 'kube.watch.relist', node: nodeName, resourceVersion }, 'read the node');
        options.onNode(node, 'relist');
      }
      const started = Date.now();
      const result = await watchOnce(options, resourceVersion!, timeoutSeconds, (type, node) => {
        seen(node);
        if (type !== 'bookmark') options.onNode(node, type);
      });
      if (result.end === 'aborted') break;
      if (result.end === 'gone') {
        logger.info(
          { event: 'kube.watch.gone', node: nodeName, resourceVersion },
          '410 Gone: the resource version is too old; relisting',
        );
        resourceVersion = undefined;
        failures = 0;
        continue;
      }
      if (result.events === 0 && Date.now() - started < SHORT_WATCH_MS) {
        throw new Error('the server closed the watch at once');
      }
      failures = 0;
      logger.debug({ event: 'kube.watch.closed', node: nodeName, resourceVersion }, 'watch ended; resuming');
    } catch (error) {
      if (signal.aborted) break;
      failures++;
      const retryInMs = backoffDelay(backoff, failures);
      const err = kubeError(`watch node ${nodeName}`, error, { node: nodeName });
      logger.warn(
        { event: 'kube.watch.error', node: nodeName, failures, retryInMs, err },
        `watch failed: ${messageOf(err)}`,
      );
      if (statusCodeOf(error) === 410) resourceVersion = undefined;
      await delay(retryInMs, signal);
    }
  }
  logger.debug({ event: 'kube.watch.stop', node: nodeName }, 'watch stopped');
}

/**
 * One watch request (docs/facts/kubernetes-api-client.md#watch-stream): resolves when the stream
 * ends, on 410 Gone or on abort; rejects on an error.
 */
function watchOnce(
  options: WatchNodeOptions,
  resourceVersion: string,
  timeoutSeconds: number,
  onEvent: (type: 'added' | 'modified' | 'bookmark', node: KubeNode) => void,
): Promise<WatchEnd> {
  const { signal, nodeName, logger } = options;
  return new Promise<WatchEnd>((resolve, reject) => {
    let controller: { abort(): void } | undefined;
    let settled = false;
    let events = 0;
    let outcome: { gone: true } | { error: unknown } | undefined;

    const finish = (error: unknown) => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      controller?.abort();
      if (signal.aborted) resolve({ end: 'aborted', events });
      else if (outcome && 'gone' in outcome) resolve({ end: 'gone', events });
      else if (outcome && 'error' in outcome) reject(outcome.error);
      else if (error && statusCodeOf(error) === 410) resolve({ end: 'gone', events });
      else if (error) reject(error);
      else resolve({ end: 'closed', events });
    };
    const onAbort = () => finish(null);
    signal.addEventListener('abort', onAbort, { once: true });

    const onLine = (type: string, object: unknown) => {
      if (settled) return;
      events++;
      if (type === 'ERROR') {
        const status = object as { code?: number; message?: string; reason?: string };
        if (status?.code === 410) outcome = { gone: true };
        else
          outcome = {
            error: Object.assign(new Error(status?.message ?? 'watch ERROR event'), { statusCode: status?.code }),
          };
        finish(null);
        return;
      }
      const snapshot = toKubeNode(object as NodeObject | null);
      if (!snapshot.resourceVersion) return;
      if ((object as NodeObject).metadata?.name === undefined) snapshot.name = nodeName;
      if (type === 'BOOKMARK') onEvent('bookmark', snapshot);
      else if (type === 'ADDED' || type === 'MODIFIED') onEvent(type === 'ADDED' ? 'added' : 'modified', snapshot);
      else if (type === 'DELETED') {
        logger.warn({ event: 'kube.watch.node-deleted', node: nodeName }, `node ${nodeName} was deleted`);
        onEvent('bookmark', snapshot);
      }
    };

    options.watcher
      .watch(
        '/api/v1/nodes',
        {
          fieldSelector: `metadata.name=${nodeName}`,
          resourceVersion,
          allowWatchBookmarks: true,
          timeoutSeconds,
        },
        onLine,
        (error: unknown) => finish(error),
        signal,
      )
      .then(
        (c) => {
          controller = c;
          if (settled) c.abort();
        },
        (error: unknown) => finish(error ?? new Error('watch request failed')),
      );
  });
}
