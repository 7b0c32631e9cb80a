import { GpuccError, isGpuccError, messageOf } from '@gpucc/hal';

/** The HTTP status an API or watch error carries (KubeApiError `statusCode`, else a numeric `code`), if any. */
export function statusCodeOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const e = error as { code?: unknown; statusCode?: unknown };
  if (typeof e.statusCode === 'number') return e.statusCode;
  return typeof e.code === 'number' ? e.code : undefined;
}

/** The API server's own words: the `message` of a Status body (docs/facts/kubernetes-api-client.md#status-objects), else the body text, bounded. */
export function serverMessageOf(error: unknown): string | undefined {
  const body = (error as { body?: unknown } | null)?.body;
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'object' && typeof (body as { message?: unknown }).message === 'string') {
    return (body as { message: string }).message;
  }
  const text = typeof body === 'string' ? body : String(body);
  try {
    const parsed = JSON.parse(text) as { message?: unknown };
    if (typeof parsed?.message === 'string') return parsed.message;
  } catch {
    // not JSON: the text itself
  }
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

/**
 * One Kubernetes request failure as a GpuccError: 401, 403 and 404 get codes of their own (each has
 * its own fix); everything else, including an unreachable server, is ERR_GPUCC_KUBE_REQUEST_FAILED.
 */
export function kubeError(what: string, error: unknown, details: Record<string, unknown> = {}): GpuccError {
  if (isGpuccError(error)) return error;
  const status = statusCodeOf(error);
  const said = serverMessageOf(error);
  const words = said ? `: ${said}` : '';
  const base = { ...details, ...(status === undefined ? {} : { status }) };
  if (status === 401) {
    return new GpuccError('ERR_GPUCC_KUBE_UNAUTHORIZED', `${what}: 401 Unauthorized${words}`, {
      hint: 'check the service-account token (in a pod) or the user of the kubeconfig',
      cause: error,
      details: base,
    });
  }
  if (status === 403) {
    return new GpuccError('ERR_GPUCC_KUBE_FORBIDDEN', `${what}: 403 Forbidden${words}`, {
      hint: 'grant the service account get, watch and patch on nodes and create on events (see deploy/)',
      cause: error,
      details: base,
    });
  }
  if (status === 404) {
    return new GpuccError('ERR_GPUCC_KUBE_NOT_FOUND', `${what}: 404 Not Found${words}`, {
      hint: 'set NODE_NAME (--node-name) to this node’s name, from the downward API spec.nodeName',
      cause: error,
      details: base,
    });
  }
  const how = status === undefined ? messageOf(error).split('\n')[0] : `HTTP ${status}${words}`;
  return new GpuccError('ERR_GPUCC_KUBE_REQUEST_FAILED', `${what}: ${how}`, {
    hint:
      status === undefined
        ? 'the API server cannot be reached: check the server address, DNS and network policy from the node'
        : 'the API server failed the request; it is retried with backoff',
    cause: error,
    details: base,
  });
}
