import path from 'node:path';
import { GpuccError, localFs, messageOf } from '@gpucc/hal';
import { parse as parseYaml } from 'yaml';

/** How requests prove who they are; resolved per request by auth.ts (tokens rotate, plugins expire). */
export type KubeCredentials =
  | { kind: 'none' }
  | { kind: 'token'; token: string }
  /** Re-read when the file changes: projected service-account tokens rotate. */
  | { kind: 'token-file'; file: string }
  | { kind: 'client-cert'; cert: Buffer; key: Buffer }
  | { kind: 'exec'; exec: ExecPlugin };

/** A client-go exec credential plugin (docs/facts/kubernetes-api-client.md#exec-credential-plugins). */
export interface ExecPlugin {
  apiVersion: string;
  /** Absolute, bare (looked up in PATH), or already resolved against the kubeconfig's directory. */
  command: string;
  args: string[];
  env: Record<string, string>;
  /** Passed to the plugin as `spec.cluster` when the kubeconfig sets `provideClusterInfo`. */
  cluster?: Record<string, unknown>;
}

/** Where and how to reach the API server: plain data, read once at start. */
export interface KubeConfig {
  /** `https://host:port` or `http://…`, without a trailing slash. */
  server: string;
  /** PEM of the CA(s) the server's certificate is checked against; the system's when absent. */
  ca?: Buffer;
  insecureSkipTlsVerify: boolean;
  /** The name checked in the server's certificate when it differs from the server's host. */
  tlsServerName?: string;
  credentials: KubeCredentials;
  /** The kubeconfig file, or `in-cluster`: for messages. */
  source: string;
}

/** The pod's service account, as the kubelet mounts it (docs/facts/kubernetes-api-client.md#in-cluster). */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** The ExecCredential versions understood; v1alpha1 was removed from client-go in 1.24. */
export const EXEC_API_VERSIONS = ['client.authentication.k8s.io/v1', 'client.authentication.k8s.io/v1beta1'];

const CONFIG_HINT = 'pass a readable kubeconfig with --kubeconfig (KUBECONFIG), or run in a pod with a service account';

function configError(message: string, hint: string, details: Record<string, unknown>, cause?: unknown): GpuccError {
  return new GpuccError('ERR_GPUCC_KUBE_CONFIG', message, { hint, details, ...(cause ? { cause } : {}) });
}

/**
 * The client configuration: the kubeconfig file when one is given (`--kubeconfig`, `KUBECONFIG`),
 * else the pod's service account (in-cluster). Anything else is ERR_GPUCC_KUBE_CONFIG, so the
 * binary stops at start with a clear message instead of failing at its first request.
 */
export function loadKubeConfig(
  given?: string,
  env: NodeJS.ProcessEnv = process.env,
  serviceAccountDir = SERVICE_ACCOUNT_DIR,
): KubeConfig {
  // KUBECONFIG may list several files, as kubectl allows: the first that exists is used.
  const candidates = (given ?? '').split(path.delimiter).filter(Boolean);
  const kubeconfig = candidates.find((file) => localFs.exists(file)) ?? candidates[0];
  if (kubeconfig) {
    let document: unknown;
    try {
      document = parseYaml(localFs.readText(kubeconfig));
    } catch (error) {
      throw configError(
        `cannot load kubeconfig ${kubeconfig}: ${messageOf(error)}`,
        CONFIG_HINT,
        { kubeconfig },
        error,
      );
    }
    return kubeConfigFrom(document, kubeconfig);
  }
  return inClusterConfig(env, serviceAccountDir);
}

/** The pod's own service account: the API server's service address, its token file and CA. */
export function inClusterConfig(env: NodeJS.ProcessEnv, serviceAccountDir = SERVICE_ACCOUNT_DIR): KubeConfig {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) {
    throw configError(
      'not running in a Kubernetes pod and no kubeconfig given',
      'pass --kubeconfig FILE (KUBECONFIG) outside a cluster; in a pod, KUBERNETES_SERVICE_HOST is set for you',
      {},
    );
  }
  const tokenFile = path.join(serviceAccountDir, 'token');
  const caFile = path.join(serviceAccountDir, 'ca.crt');
  if (!localFs.exists(tokenFile)) {
    throw configError(
      `in a pod (KUBERNETES_SERVICE_HOST=${host}) but the service-account token ${tokenFile} is missing`,
      'mount the service account token (automountServiceAccountToken: true), or pass --kubeconfig FILE',
      { tokenFile },
    );
  }
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    ...(localFs.exists(caFile) ? { ca: localFs.readBytes(caFile) } : {}),
    insecureSkipTlsVerify: false,
    credentials: { kind: 'token-file', file: tokenFile },
    source: 'in-cluster',
  };
}

type Named = { name?: unknown; [key: string]: unknown };
type Fields = Record<string, unknown>;

const isFields = (value: unknown): value is Fields =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function entry(document: Fields, list: string, field: string, name: unknown): Fields | undefined {
  const items = Array.isArray(document[list]) ? (document[list] as Named[]) : [];
  const found = items.find((item) => isFields(item) && item.name === name)?.[field];
  return isFields(found) ? found : undefined;
}

/** A field that is a non-empty string, as kubeconfig and ExecCredential fields are read. */
export const text = (fields: Fields, key: string): string | undefined =>
  typeof fields[key] === 'string' && fields[key] !== '' ? (fields[key] as string) : undefined;

/**
 * A parsed kubeconfig (docs/facts/kubernetes-api-client.md#kubeconfig) as what this client needs:
 * current-context → cluster and user. File paths in it are relative to the kubeconfig's directory.
 */
export function kubeConfigFrom(document: unknown, source: string): KubeConfig {
  const details = { kubeconfig: source };
  if (!isFields(document)) throw configError(`kubeconfig ${source} is not a YAML mapping`, CONFIG_HINT, details);
  const context = entry(document, 'contexts', 'context', document['current-context']);
  const cluster = context && entry(document, 'clusters', 'cluster', context.cluster);
  const server = cluster && text(cluster, 'server');
  if (!cluster || !server) {
    throw configError(
      `kubeconfig ${source} has no current context with a cluster`,
      'set current-context in the kubeconfig (kubectl config use-context NAME)',
      details,
    );
  }
  const base = path.dirname(source);
  const resolve = (file: string) => path.resolve(base, file);
  /** `<key>-data` (base64) or `<key>` (a file), as kubeconfig allows for certificates and keys. */
  const pem = (fields: Fields, key: string): Buffer | undefined => {
    const data = text(fields, `${key}-data`);
    if (data) return Buffer.from(data, 'base64');
    const file = text(fields, key);
    if (!file) return undefined;
    try {
      return localFs.readBytes(resolve(file));
    } catch (error) {
      throw configError(
        `kubeconfig ${source}: cannot read ${key} ${file}: ${messageOf(error)}`,
        CONFIG_HINT,
        details,
        error,
      );
    }
  };
  if (text(cluster, 'proxy-url')) {
    throw configError(
      `kubeconfig ${source}: the cluster's proxy-url is not supported`,
      'reach the API server directly from the node (a node agent normally does), or remove proxy-url',
      { ...details, proxyUrl: text(cluster, 'proxy-url') },
    );
  }
  const user = entry(document, 'users', 'user', context.user) ?? {};
  const tlsServerName = text(cluster, 'tls-server-name');
  const ca = pem(cluster, 'certificate-authority');
  const credentials = credentialsOf(user, pem, resolve, source);
  if (credentials.kind === 'exec' && isFields(user.exec) && user.exec.provideClusterInfo === true) {
    credentials.exec.cluster = {
      server,
      ...(tlsServerName ? { 'tls-server-name': tlsServerName } : {}),
      ...(cluster['insecure-skip-tls-verify'] === true ? { 'insecure-skip-tls-verify': true } : {}),
      ...(ca ? { 'certificate-authority-data': ca.toString('base64') } : {}),
    };
  }
  return {
    server: server.replace(/\/+$/, ''),
    ...(ca ? { ca } : {}),
    insecureSkipTlsVerify: cluster['insecure-skip-tls-verify'] === true,
    ...(tlsServerName ? { tlsServerName } : {}),
    credentials,
    source,
  };
}

function credentialsOf(
  user: Fields,
  pem: (fields: Fields, key: string) => Buffer | undefined,
  resolve: (file: string) => string,
  source: string,
): KubeCredentials {
  const refused = (what: string) =>
    configError(
      `kubeconfig ${source}: the user's ${what} authentication is not supported`,
      'use a bearer token (token, tokenFile), a client certificate, or an exec credential plugin, as a service account would',
      { kubeconfig: source, auth: what },
    );
  if (user['auth-provider'] !== undefined) throw refused('auth-provider');
  if (text(user, 'username') || text(user, 'password')) throw refused('username/password');
  const token = text(user, 'token');
  if (token) return { kind: 'token', token };
  const tokenFile = text(user, 'tokenFile');
  if (tokenFile) return { kind: 'token-file', file: resolve(tokenFile) };
  const cert = pem(user, 'client-certificate');
  const key = pem(user, 'client-key');
  if (cert && key) return { kind: 'client-cert', cert, key };
  if (cert || key) {
    throw configError(
      `kubeconfig ${source}: the user has a client certificate or key but not both`,
      'give client-certificate(-data) and client-key(-data) together',
      { kubeconfig: source },
    );
  }
  if (isFields(user.exec)) return { kind: 'exec', exec: execPluginOf(user.exec, resolve, source) };
  return { kind: 'none' };
}

function execPluginOf(exec: Fields, resolve: (file: string) => string, source: string): ExecPlugin {
  const command = text(exec, 'command');
  const apiVersion = text(exec, 'apiVersion') ?? '';
  if (!command || !EXEC_API_VERSIONS.includes(apiVersion)) {
    throw configError(
      `kubeconfig ${source}: the user's exec plugin needs a command and apiVersion ${EXEC_API_VERSIONS.join(' or ')}`,
      'fix users[].user.exec in the kubeconfig (client.authentication.k8s.io/v1alpha1 is not supported)',
      { kubeconfig: source, apiVersion },
    );
  }
  if (exec.interactiveMode === 'Always') {
    throw configError(
      `kubeconfig ${source}: the user's exec plugin needs a terminal (interactiveMode: Always)`,
      'a daemon has none: use a plugin that works without one (interactiveMode: Never or IfAvailable)',
      { kubeconfig: source, command },
    );
  }
  const env: Record<string, string> = {};
  for (const item of Array.isArray(exec.env) ? exec.env : []) {
    if (isFields(item) && typeof item.name === 'string') env[item.name] = String(item.value ?? '');
  }
  return {
    apiVersion,
    // client-go: a command with a path separator is relative to the kubeconfig's directory.
    command: command.includes('/') ? resolve(command) : command,
    args: Array.isArray(exec.args) ? exec.args.map(String) : [],
    env,
  };
}
