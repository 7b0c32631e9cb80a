import { GpuccError, localFs, messageOf, runTool } from '@gpucc/hal';
import { type ExecPlugin, type KubeCredentials, text } from './config.js';

/** What one request carries: a bearer token header, or a client certificate for the TLS handshake. */
export interface RequestAuth {
  authorization?: string;
  cert?: Buffer;
  key?: Buffer;
}

export interface Authenticator {
  current(): Promise<RequestAuth>;
  /** The server said 401: credentials a plugin gave are asked for again next time. */
  rejected(): void;
}

const EXEC_TIMEOUT_MS = 60_000;
// An exec credential is renewed this long before it expires, so a request never carries a stale one.
const EXPIRY_MARGIN_MS = 10_000;

/** Credentials resolved per request: a token file re-read when it changes, an exec plugin's cached until expiry. */
export function createAuthenticator(credentials: KubeCredentials, now: () => number = Date.now): Authenticator {
  switch (credentials.kind) {
    case 'none':
      return { current: async () => ({}), rejected() {} };
    case 'token': {
      const auth = { authorization: `Bearer ${credentials.token}` };
      return { current: async () => auth, rejected() {} };
    }
    case 'client-cert': {
      const auth = { cert: credentials.cert, key: credentials.key };
      return { current: async () => auth, rejected() {} };
    }
    case 'token-file':
      return tokenFileAuthenticator(credentials.file);
    case 'exec':
      return execAuthenticator(credentials.exec, now);
  }
}

/** A projected service-account token rotates in place (docs/facts/kubernetes-api-client.md#in-cluster): its file is read again whenever it changed. */
function tokenFileAuthenticator(file: string): Authenticator {
  let stamp: string | undefined;
  let auth: RequestAuth = {};
  return {
    async current() {
      const now = localFs.fileStamp(file);
      if (now === undefined || now !== stamp) {
        let token: string;
        try {
          token = localFs.readText(file).trim();
        } catch (error) {
          throw new GpuccError('ERR_GPUCC_KUBE_CONFIG', `cannot read the token file ${file}: ${messageOf(error)}`, {
            hint: 'mount the service account token (automountServiceAccountToken: true) or fix tokenFile in the kubeconfig',
            cause: error,
            details: { tokenFile: file },
          });
        }
        stamp = now;
        auth = { authorization: `Bearer ${token}` };
      }
      return auth;
    },
    rejected() {
      stamp = undefined;
    },
  };
}

/** Runs the plugin (docs/facts/kubernetes-api-client.md#exec-credential-plugins) and keeps its answer until it expires. */
function execAuthenticator(plugin: ExecPlugin, now: () => number): Authenticator {
  let cached: { auth: RequestAuth; expiresAt: number } | undefined;
  let pending: Promise<RequestAuth> | undefined;
  const run = async (): Promise<RequestAuth> => {
    const spec = { interactive: false, ...(plugin.cluster ? { cluster: plugin.cluster } : {}) };
    const info = { apiVersion: plugin.apiVersion, kind: 'ExecCredential', spec };
    const result = await runTool({
      command: plugin.command,
      args: plugin.args,
      env: { ...plugin.env, KUBERNETES_EXEC_INFO: JSON.stringify(info) },
      timeoutMs: EXEC_TIMEOUT_MS,
    });
    const { auth, expiresAt } = readExecCredential(result.stdout, plugin);
    cached = { auth, expiresAt };
    return auth;
  };
  return {
    async current() {
      if (cached && now() < cached.expiresAt - EXPIRY_MARGIN_MS) return cached.auth;
      // One plugin run at a time: the watch and a patch asking together share its answer.
      pending ??= run().finally(() => {
        pending = undefined;
      });
      return pending;
    },
    rejected() {
      cached = undefined;
    },
  };
}

/** The ExecCredential a plugin printed: a token or a client certificate, and when it expires. */
export function readExecCredential(stdout: string, plugin: ExecPlugin): { auth: RequestAuth; expiresAt: number } {
  const fail = (why: string, cause?: unknown) =>
    new GpuccError('ERR_GPUCC_KUBE_CONFIG', `exec credential plugin ${plugin.command}: ${why}`, {
      hint: 'run the plugin by hand: it must print an ExecCredential with status.token or a client certificate and key',
      details: { command: plugin.command, apiVersion: plugin.apiVersion },
      ...(cause ? { cause } : {}),
    });
  let credential: { apiVersion?: unknown; kind?: unknown; status?: Record<string, unknown> };
  try {
    credential = JSON.parse(stdout);
  } catch (error) {
    throw fail(`its output is not JSON: ${messageOf(error)}`, error);
  }
  if (credential?.kind !== 'ExecCredential' || credential.apiVersion !== plugin.apiVersion) {
    throw fail(
      `it printed ${String(credential?.apiVersion)} ${String(credential?.kind)}, not ${plugin.apiVersion} ExecCredential`,
    );
  }
  const status = credential.status ?? {};
  const token = text(status, 'token');
  const cert = text(status, 'clientCertificateData');
  const key = text(status, 'clientKeyData');
  let auth: RequestAuth;
  if (token) auth = { authorization: `Bearer ${token}` };
  else if (cert && key) auth = { cert: Buffer.from(cert), key: Buffer.from(key) };
  else throw fail('its status has neither a token nor clientCertificateData with clientKeyData');
  const expiry = text(status, 'expirationTimestamp');
  const expiresAt = expiry ? Date.parse(expiry) : Number.POSITIVE_INFINITY;
  if (Number.isNaN(expiresAt)) throw fail(`its expirationTimestamp ${expiry} is not an RFC 3339 time`);
  return { auth, expiresAt };
}
