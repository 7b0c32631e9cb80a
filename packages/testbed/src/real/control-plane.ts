import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { request } from 'node:https';
import path from 'node:path';
import { localFs, type Service, startService } from '@gpucc/hal';
import { freePort } from '../fixtures/ports.js';
import { logTail, until } from './wait.js';

/**
 * A real control plane on loopback: etcd and kube-apiserver built from source (scripts/k8s.sh),
 * with RBAC and the Node authorizer, ServiceAccount tokens (TokenRequest) and a static admin token
 * for the test itself. Nothing else of a cluster runs: no controller manager, no scheduler.
 */
export interface ControlPlaneOptions {
  /** kube-apiserver --watch-cache (default true); off, watches read etcd and expire with its compaction. */
  watchCache?: boolean;
}

export interface ApiResponse {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: JSON of every kind of object the tests read
  body: any;
}

export class ControlPlane {
  etcd: Service | undefined;
  apiServer: Service | undefined;
  readonly adminToken = randomBytes(24).toString('hex');
  private etcdPort = 0;
  private apiPort = 0;

  private constructor(
    private readonly bin: string,
    /** Its data, keys, kubeconfigs and logs (etcd.log, kube-apiserver.log). */
    readonly dir: string,
    private readonly options: ControlPlaneOptions,
  ) {}

  /** Starts etcd and kube-apiserver from `bin` (scripts/k8s.sh path), keeping everything in `dir`. */
  static async start(bin: string, dir: string, options: ControlPlaneOptions = {}): Promise<ControlPlane> {
    const cp = new ControlPlane(bin, dir, options);
    try {
      await cp.setUp();
      return cp;
    } catch (error) {
      await cp.stop();
      throw error;
    }
  }

  private async setUp(): Promise<void> {
    localFs.makeDir(path.join(this.dir, 'pki'));
    const { privateKey, publicKey } = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    });
    localFs.writeFileSync(path.join(this.dir, 'pki/sa.key'), privateKey, 0o600);
    localFs.writeFileSync(path.join(this.dir, 'pki/sa.pub'), publicKey);
    localFs.writeFileSync(
      path.join(this.dir, 'tokens.csv'),
      `${this.adminToken},gpucc-test-admin,1,"system:masters"\n`,
      0o600,
    );
    await this.startEtcd();
    this.apiPort = await freePort();
    await this.startApiServer();
  }

  private start(name: string, args: string[]): Service {
    return startService({ command: path.join(this.bin, name), args, logFile: this.logFile(name) });
  }

  logFile(name: 'etcd' | 'kube-apiserver' | string): string {
    return path.join(this.dir, `${name}.log`);
  }

  private exitedWith(name: string, service: Service): Error | undefined {
    const exit = service.exit();
    if (exit === undefined) return undefined;
    const tail = logTail(() => localFs.readText(this.logFile(name)));
    return new Error(`${name} exited (${exit.signal ?? exit.code}):\n${tail}`);
  }

  get etcdUrl(): string {
    return `http://127.0.0.1:${this.etcdPort}`;
  }

  get url(): string {
    return `https://127.0.0.1:${this.apiPort}`;
  }

  private async startEtcd(): Promise<void> {
    this.etcdPort = await freePort();
    const peer = await freePort();
    const etcd = this.start('etcd', [
      '--name',
      'gpucc',
      '--data-dir',
      path.join(this.dir, 'etcd'),
      '--listen-client-urls',
      this.etcdUrl,
      '--advertise-client-urls',
      this.etcdUrl,
      '--listen-peer-urls',
      `http://127.0.0.1:${peer}`,
      '--initial-advertise-peer-urls',
      `http://127.0.0.1:${peer}`,
      '--initial-cluster',
      `gpucc=http://127.0.0.1:${peer}`,
      '--unsafe-no-fsync', // a test's throwaway data
    ]);
    this.etcd = etcd;
    await until(
      'etcd to be healthy',
      async () => {
        const exited = this.exitedWith('etcd', etcd);
        if (exited) throw exited;
        const response = await fetch(`${this.etcdUrl}/health`).catch(() => undefined);
        return response?.ok ? true : undefined;
      },
      60_000,
    );
  }

  /** Starts kube-apiserver (again, after stopApiServer) on the same port, data and keys. */
  async startApiServer(): Promise<void> {
    const pki = path.join(this.dir, 'pki');
    const apiServer = this.start('kube-apiserver', [
      '--etcd-servers',
      this.etcdUrl,
      '--bind-address',
      '127.0.0.1',
      '--advertise-address',
      '127.0.0.1',
      '--secure-port',
      String(this.apiPort),
      '--cert-dir',
      path.join(this.dir, 'serving'),
      '--authorization-mode',
      'Node,RBAC',
      // No --allow-privileged: the default (false) refuses privileged containers, and
      // deploy/kubernetes has none.
      '--token-auth-file',
      path.join(this.dir, 'tokens.csv'),
      '--service-account-issuer',
      'https://kubernetes.default.svc.cluster.local',
      '--service-account-key-file',
      path.join(pki, 'sa.pub'),
      '--service-account-signing-key-file',
      path.join(pki, 'sa.key'),
      '--service-cluster-ip-range',
      '10.96.0.0/16',
      // Loopback is not a valid Endpoints address: nothing would reconcile the kubernetes Service.
      '--endpoint-reconciler-type',
      'none',
      `--watch-cache=${this.options.watchCache ?? true}`,
      '--v',
      '1',
    ]);
    this.apiServer = apiServer;
    await until(
      'kube-apiserver to be ready',
      async () => {
        const exited = this.exitedWith('kube-apiserver', apiServer);
        if (exited) throw exited;
        if (!localFs.exists(this.caFile)) return undefined;
        const r = await this.api('GET', '/readyz').catch(() => undefined);
        return r?.status === 200 ? true : undefined;
      },
      120_000,
    );
  }

  /** SIGTERM (a graceful stop, cut to 5 s: it waits for watches) or SIGKILL (a crash). */
  async stopApiServer(signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    const server = this.apiServer;
    if (!server) return;
    if (signal === 'SIGKILL') {
      server.signal('SIGKILL');
      await server.exited;
    } else await server.stop(5_000);
  }

  /** The self-signed serving certificate (and its CA) kube-apiserver wrote into --cert-dir. */
  get caFile(): string {
    return path.join(this.dir, 'serving', 'apiserver.crt');
  }

  /** One request as `token` (default: the admin); JSON in and out. */
  api(method: string, urlPath: string, body?: unknown, token = this.adminToken, contentType?: string) {
    return new Promise<ApiResponse>((resolve, reject) => {
      const data = body === undefined ? undefined : JSON.stringify(body);
      const req = request(
        `${this.url}${urlPath}`,
        {
          method,
          ca: localFs.readBytes(this.caFile),
          headers: {
            authorization: `Bearer ${token}`,
            accept: 'application/json',
            ...(data ? { 'content-type': contentType ?? 'application/json' } : {}),
          },
        },
        (res) => {
          let text = '';
          res.on('data', (chunk) => {
            text += chunk;
          });
          res.on('end', () => {
            let parsed: unknown = text;
            try {
              parsed = JSON.parse(text);
            } catch {
              // plain text (e.g. /readyz)
            }
            resolve({ status: res.statusCode ?? 0, body: parsed });
          });
        },
      );
      req.on('error', reject);
      if (data) req.write(data);
      req.end();
    });
  }

  /** A kubeconfig for `token` that verifies the server against its own CA. */
  kubeconfig(name: string, token = this.adminToken): string {
    const file = path.join(this.dir, `${name}.kubeconfig`);
    const ca = localFs.readBytes(this.caFile).toString('base64');
    localFs.writeFileSync(
      file,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        `- name: real\n  cluster:\n    server: ${this.url}\n    certificate-authority-data: ${ca}`,
        'users:',
        `- name: ${name}\n  user:\n    token: ${token}`,
        'contexts:',
        `- name: ${name}\n  context:\n    cluster: real\n    user: ${name}`,
        `current-context: ${name}`,
        '',
      ].join('\n'),
      0o600,
    );
    return file;
  }

  /**
   * A ServiceAccount token from the TokenRequest API. Bound to a pod, as the kubelet asks for a
   * pod's projected token, it carries the pod's node (authentication.kubernetes.io/node-name).
   */
  async serviceAccountToken(namespace: string, name: string, pod?: { name: string; uid: string }): Promise<string> {
    const r = await this.api('POST', `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`, {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: {
        expirationSeconds: 3600,
        ...(pod ? { boundObjectRef: { apiVersion: 'v1', kind: 'Pod', ...pod } } : {}),
      },
    });
    if (r.status !== 201) throw new Error(`TokenRequest: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.status.token as string;
  }

  async stop(): Promise<void> {
    await this.apiServer?.stop(5_000);
    await this.etcd?.stop(10_000);
  }
}
