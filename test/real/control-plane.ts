import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import path from 'node:path';
import { freePort, type Proc, REPO, startProcess, tempDir, until } from './processes.js';

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
  etcd!: Proc;
  apiServer!: Proc;
  readonly dir = tempDir('k8s');
  readonly adminToken = randomBytes(24).toString('hex');
  private etcdPort = 0;
  private apiPort = 0;

  private constructor(
    private readonly bin: string,
    private readonly options: ControlPlaneOptions,
  ) {}

  static async start(bin: string, options: ControlPlaneOptions = {}): Promise<ControlPlane> {
    const cp = new ControlPlane(bin, options);
    mkdirSync(path.join(cp.dir, 'pki'), { recursive: true });
    const { privateKey, publicKey } = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    });
    writeFileSync(path.join(cp.dir, 'pki/sa.key'), privateKey, { mode: 0o600 });
    writeFileSync(path.join(cp.dir, 'pki/sa.pub'), publicKey);
    writeFileSync(path.join(cp.dir, 'tokens.csv'), `${cp.adminToken},gpucc-test-admin,1,"system:masters"\n`, {
      mode: 0o600,
    });
    await cp.startEtcd();
    cp.apiPort = await freePort();
    await cp.startApiServer();
    return cp;
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
    this.etcd = startProcess('etcd', path.join(this.bin, 'etcd'), [
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
    await until(
      'etcd to be healthy',
      async () => {
        if (this.etcd.child.exitCode !== null) throw new Error(`etcd exited:\n${this.etcd.output().slice(-3000)}`);
        const response = await fetch(`${this.etcdUrl}/health`).catch(() => undefined);
        return response?.ok ? true : undefined;
      },
      60_000,
    );
  }

  /** Starts kube-apiserver (again, after stopApiServer) on the same port, data and keys. */
  async startApiServer(): Promise<void> {
    const pki = path.join(this.dir, 'pki');
    this.apiServer = startProcess('kube-apiserver', path.join(this.bin, 'kube-apiserver'), [
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
    await until(
      'kube-apiserver to be ready',
      async () => {
        if (this.apiServer.child.exitCode !== null) {
          throw new Error(`kube-apiserver exited:\n${this.apiServer.output().slice(-3000)}`);
        }
        if (!existsSync(this.caFile)) return undefined;
        const r = await this.api('GET', '/readyz').catch(() => undefined);
        return r?.status === 200 ? true : undefined;
      },
      120_000,
    );
  }

  async stopApiServer(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    // A graceful stop waits for long requests (watches); a test needs no more than a few seconds.
    await this.apiServer.stop(signal, 5_000);
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
          ca: readFileSync(this.caFile),
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
    const ca = readFileSync(this.caFile).toString('base64');
    writeFileSync(
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
      { mode: 0o600 },
    );
    return file;
  }

  /** kubectl 1.x (on PATH) against this API server as the admin. */
  kubectl(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
    const kubeconfig = this.kubeconfig('admin');
    return new Promise((resolve) => {
      const child = execFile(
        'kubectl',
        ['--kubeconfig', kubeconfig, ...args],
        { cwd: REPO, maxBuffer: 32 * 1024 * 1024 },
        (error, stdout, stderr) => {
          const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
          resolve({ code, stdout, stderr });
        },
      );
      if (input !== undefined) child.stdin?.end(input);
    });
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
    await this.apiServer?.stop('SIGTERM', 5_000);
    await this.etcd?.stop();
  }
}
