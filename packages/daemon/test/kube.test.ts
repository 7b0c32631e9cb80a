import { execFileSync } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { isGpuccError, localFs } from '@gpucc/hal';
import { silentLogger } from '@gpucc/testbed/fixtures';
import { tempDir } from '@gpucc/testbed/vitest';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createAuthenticator,
  createNodeClient,
  inClusterConfig,
  type KubeConfig,
  type KubeNode,
  loadKubeConfig,
  type NodeUpdate,
} from '../src/kube/index.js';

interface Seen {
  method: string;
  url: string;
  authorization?: string;
  clientCN?: string;
  contentType?: string;
  body: string;
}
type Handler = (req: http.IncomingMessage, res: http.ServerResponse, seen: Seen) => void;

const servers: http.Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((resolve) => s.close(resolve));
  }
});

/** An API server stand-in that records each request (and the client certificate's CN on TLS). */
async function serve(handler: Handler, tls?: https.ServerOptions) {
  const requests: Seen[] = [];
  const listener = (req: http.IncomingMessage, res: http.ServerResponse) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      const peer = (req.socket as import('node:tls').TLSSocket).getPeerCertificate?.();
      const seen: Seen = {
        method: req.method!,
        url: req.url!,
        body,
        ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
        ...(req.headers['content-type'] ? { contentType: req.headers['content-type'] } : {}),
        ...(peer?.subject?.CN ? { clientCN: String(peer.subject.CN) } : {}),
      };
      requests.push(seen);
      handler(req, res, seen);
    });
  };
  const server = tls ? https.createServer(tls, listener) : http.createServer(listener);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { requests, port, url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}` };
}

const nodeJson = (resourceVersion: string, labels: Record<string, string> = {}) => ({
  kind: 'Node',
  apiVersion: 'v1',
  metadata: { name: 'n1', uid: 'u1', resourceVersion, labels },
});
const answerNode: Handler = (_req, res, seen) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify(nodeJson('7', { who: seen.authorization?.replace('Bearer ', '') ?? seen.clientCN ?? '' })));
};

function kubeconfig(dir: string, server: string, user: string, cluster = '') {
  const file = path.join(dir, 'kubeconfig');
  localFs.writeFileSync(
    file,
    `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: ${server}
${cluster}users:
- name: u
  user:
${user}contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
`,
    0o600,
  );
  return file;
}

const clientFor = (config: KubeConfig) =>
  createNodeClient({ nodeName: 'n1', config, logger: silentLogger(), component: 'cc-manager' });

/** A CA, a server certificate for 127.0.0.1 and kube.test, and a client certificate, made by openssl. */
let pki: { dir: string; ca: Buffer; serverCert: Buffer; serverKey: Buffer; clientCert: Buffer; clientKey: Buffer };
beforeAll(() => {
  const dir = localFs.makeTempDir('/tmp', 'gpucc-kube-pki-');
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  ssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '2',
    '-subj',
    '/CN=test-ca',
  );
  for (const [name, subject, ext] of [
    ['server', '/CN=kube.test', 'subjectAltName=IP:127.0.0.1,DNS:kube.test'],
    ['client', '/CN=system:node:n1', 'extendedKeyUsage=clientAuth'],
  ] as const) {
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject);
    localFs.writeFileSync(path.join(dir, `${name}.ext`), `${ext}\n`);
    ssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '2',
      '-out',
      `${name}.crt`,
      '-extfile',
      `${name}.ext`,
    );
  }
  const read = (f: string) => localFs.readBytes(path.join(dir, f));
  pki = {
    dir,
    ca: read('ca.crt'),
    serverCert: read('server.crt'),
    serverKey: read('server.key'),
    clientCert: read('client.crt'),
    clientKey: read('client.key'),
  };
  return () => localFs.removeSync(dir);
});

const tlsServer = () =>
  ({ cert: pki.serverCert, key: pki.serverKey, ca: pki.ca, requestCert: true, rejectUnauthorized: false }) as const;

function refusal(run: () => unknown) {
  try {
    run();
  } catch (error) {
    return error as Error & { code: string; hint: string };
  }
  throw new Error('expected a refusal');
}

describe('kubeconfig users', () => {
  it('token: sent as a bearer token; the CA from certificate-authority (a relative file) and tls-server-name checked', async () => {
    const server = await serve(answerNode, tlsServer());
    const dir = tempDir();
    localFs.writeFileSync(path.join(dir, 'ca.pem'), pki.ca);
    // The server's address is an IP; its certificate is checked for the name given instead.
    const file = kubeconfig(
      dir,
      `https://localhost:${server.port}`,
      '    token: abc\n',
      '    certificate-authority: ca.pem\n    tls-server-name: kube.test\n',
    );
    const node = await clientFor(loadKubeConfig(file)).getNode();
    expect(node).toEqual({ name: 'n1', uid: 'u1', resourceVersion: '7', labels: { who: 'abc' } });
    expect(server.requests[0]).toMatchObject({ method: 'GET', url: '/api/v1/nodes/n1', authorization: 'Bearer abc' });
  });

  it('a server certificate the CA did not sign is refused, as ERR_GPUCC_KUBE_REQUEST_FAILED', async () => {
    const server = await serve(answerNode, tlsServer());
    const dir = tempDir();
    const error = await clientFor(loadKubeConfig(kubeconfig(dir, server.url, '    token: abc\n')))
      .getNode()
      .catch((e) => e);
    expect(error.code).toBe('ERR_GPUCC_KUBE_REQUEST_FAILED');
    expect(server.requests).toEqual([]);
  });

  it('tokenFile: read (relative to the kubeconfig), and read again once it changed', async () => {
    const server = await serve(answerNode);
    const dir = tempDir();
    localFs.writeFileSync(path.join(dir, 'token'), 'first\n');
    const client = clientFor(loadKubeConfig(kubeconfig(dir, server.url, '    tokenFile: token\n')));
    expect((await client.getNode()).labels.who).toBe('first');
    localFs.writeFileSync(path.join(dir, 'token.new'), 'second-token\n');
    localFs.renameSync(path.join(dir, 'token.new'), path.join(dir, 'token'));
    expect((await client.getNode()).labels.who).toBe('second-token');
  });

  it('client-certificate-data and client-key-data: the TLS handshake presents the certificate', async () => {
    const server = await serve(answerNode, tlsServer());
    const dir = tempDir();
    const b64 = (b: Buffer) => b.toString('base64');
    const file = kubeconfig(
      dir,
      server.url,
      `    client-certificate-data: ${b64(pki.clientCert)}\n    client-key-data: ${b64(pki.clientKey)}\n`,
      `    certificate-authority-data: ${b64(pki.ca)}\n`,
    );
    expect((await clientFor(loadKubeConfig(file)).getNode()).labels.who).toBe('system:node:n1');
    expect(server.requests[0]?.authorization).toBeUndefined();
  });

  it('exec plugin: its token is used and kept until its expirationTimestamp, then it runs again', async () => {
    const server = await serve(answerNode);
    const dir = tempDir();
    const plugin = path.join(dir, 'bin', 'credential');
    localFs.makeDir(path.dirname(plugin));
    localFs.writeFileSync(
      plugin,
      `#!/bin/sh
n=$(cat "$COUNTER" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > "$COUNTER"
printf '%s' "$KUBERNETES_EXEC_INFO" > "$COUNTER.info"
printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"exec-%s-%s","expirationTimestamp":"%s"}}' "$1" "$n" "$EXPIRES"
`,
      0o755,
    );
    const counter = path.join(dir, 'runs');
    const file = kubeconfig(
      dir,
      server.url,
      `    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: ./bin/credential
      args: [node-agent]
      env:
      - {name: COUNTER, value: ${counter}}
      - {name: EXPIRES, value: "2030-01-01T00:10:00Z"}
      interactiveMode: Never
      provideClusterInfo: true
`,
    );
    const config = loadKubeConfig(file);
    expect((await clientFor(config).getNode()).labels.who).toBe('exec-node-agent-1');
    expect(JSON.parse(localFs.readText(`${counter}.info`))).toMatchObject({
      apiVersion: 'client.authentication.k8s.io/v1',
      kind: 'ExecCredential',
      spec: { interactive: false, cluster: { server: server.url } },
    });
    // The same credential until it expires (minus a margin), then a new run.
    let now = Date.parse('2030-01-01T00:00:00Z');
    const auth = createAuthenticator(config.credentials, () => now);
    expect(await auth.current()).toEqual({ authorization: 'Bearer exec-node-agent-2' });
    now = Date.parse('2030-01-01T00:09:00Z');
    expect(await auth.current()).toEqual({ authorization: 'Bearer exec-node-agent-2' });
    now = Date.parse('2030-01-01T00:10:00Z');
    expect(await auth.current()).toEqual({ authorization: 'Bearer exec-node-agent-3' });
    auth.rejected(); // a 401: asked again even before it expires
    expect(await auth.current()).toEqual({ authorization: 'Bearer exec-node-agent-4' });
  });

  it('an exec plugin that prints no credential is ERR_GPUCC_KUBE_CONFIG naming the command', async () => {
    const dir = tempDir();
    const file = kubeconfig(
      dir,
      'http://127.0.0.1:1',
      '    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: /bin/echo\n      args: ["{}"]\n',
    );
    const error = await createAuthenticator(loadKubeConfig(file).credentials)
      .current()
      .catch((e) => e);
    expect(error.code).toBe('ERR_GPUCC_KUBE_CONFIG');
    expect(error.message).toMatch(/exec credential plugin \/bin\/echo/);
    const interactive = kubeconfig(
      dir,
      'http://127.0.0.1:1',
      '    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: login\n      interactiveMode: Always\n',
    );
    const refused = refusal(() => loadKubeConfig(interactive));
    expect(refused.code).toBe('ERR_GPUCC_KUBE_CONFIG');
    expect(refused.hint).toMatch(/interactiveMode: Never/);
  });

  it.each([
    ['auth-provider', '    auth-provider:\n      name: oidc\n      config: {idp-issuer-url: https://issuer}\n'],
    ['username/password', '    username: admin\n    password: secret\n'],
  ])('a %s user is refused at load with ERR_GPUCC_KUBE_CONFIG and a hint', (kind, user) => {
    const error = refusal(() => loadKubeConfig(kubeconfig(tempDir(), 'https://k8s.test', user)));
    expect(isGpuccError(error, 'ERR_GPUCC_KUBE_CONFIG')).toBe(true);
    expect(error.message).toContain(`the user's ${kind} authentication is not supported`);
    expect(error.hint).toMatch(/exec credential plugin/);
  });

  it('KUBECONFIG with several files: the first that exists; none with a current context is refused', () => {
    const dir = tempDir();
    const file = kubeconfig(dir, 'https://k8s.test:6443/', '    token: t\n');
    const config = loadKubeConfig([path.join(dir, 'missing'), file].join(path.delimiter));
    expect(config).toMatchObject({ server: 'https://k8s.test:6443', source: file });
    localFs.writeFileSync(path.join(dir, 'empty'), 'apiVersion: v1\nkind: Config\n');
    const error = refusal(() => loadKubeConfig(path.join(dir, 'empty')));
    expect(error.code).toBe('ERR_GPUCC_KUBE_CONFIG');
    expect(error.hint).toMatch(/current-context/);
    const proxied = kubeconfig(dir, 'https://k8s.test', '    token: t\n', '    proxy-url: http://proxy:3128\n');
    expect(refusal(() => loadKubeConfig(proxied)).message).toMatch(/proxy-url is not supported/);
  });
});

describe('in-cluster', () => {
  it('the service-account token is read again after the kubelet rotates it; ca.crt verifies the server', async () => {
    const server = await serve(answerNode, tlsServer());
    const dir = tempDir();
    localFs.writeFileSync(path.join(dir, 'ca.crt'), pki.ca);
    localFs.writeFileSync(path.join(dir, 'token'), 'projected-1');
    const env = { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(server.port) };
    const client = clientFor(loadKubeConfig(undefined, env, dir));
    expect((await client.getNode()).labels.who).toBe('projected-1');
    expect((await client.getNode()).labels.who).toBe('projected-1');
    localFs.writeFileSync(path.join(dir, 'token'), 'projected-2');
    expect((await client.getNode()).labels.who).toBe('projected-2');
  });

  it('an IPv6 service host is bracketed; a pod without its token is refused', () => {
    const dir = tempDir();
    localFs.writeFileSync(path.join(dir, 'token'), 't');
    const env = { KUBERNETES_SERVICE_HOST: 'fd00:10:96::1', KUBERNETES_SERVICE_PORT: '443' };
    expect(inClusterConfig(env, dir).server).toBe('https://[fd00:10:96::1]:443');
    const error = refusal(() => inClusterConfig(env, path.join(dir, 'none')));
    expect(error.code).toBe('ERR_GPUCC_KUBE_CONFIG');
    expect(error.hint).toMatch(/automountServiceAccountToken/);
  });
});

describe('requests and the watch', () => {
  it('PATCH is a JSON merge patch with fieldManager; an event is POSTed to default', async () => {
    const server = await serve((_req, res, seen) => {
      res.setHeader('content-type', 'application/json');
      res.statusCode = seen.method === 'POST' ? 201 : 200;
      res.end(JSON.stringify(seen.method === 'POST' ? JSON.parse(seen.body) : nodeJson('8', { a: 'b' })));
    });
    const client = clientFor(loadKubeConfig(kubeconfig(tempDir(), server.url, '    token: t\n')));
    await client.patchLabels({ a: 'b', gone: null });
    await client.createEvent({ type: 'Normal', reason: 'CcModeSwitched', message: 'done' });
    const [patch, event] = server.requests;
    expect(patch).toMatchObject({
      method: 'PATCH',
      url: '/api/v1/nodes/n1?fieldManager=cc-manager',
      contentType: 'application/merge-patch+json',
    });
    expect(JSON.parse(patch!.body)).toEqual({ metadata: { labels: { a: 'b', gone: null } } });
    expect(event).toMatchObject({ method: 'POST', url: '/api/v1/namespaces/default/events' });
    expect(JSON.parse(event!.body)).toMatchObject({
      involvedObject: { kind: 'Node', name: 'n1', uid: 'u1' },
      reason: 'CcModeSwitched',
      source: { component: 'cc-manager', host: 'n1' },
    });
  });

  it('stopping a watch the server has not answered yet closes its connection (a SIGTERM is not held up)', async () => {
    let asked = 0;
    let closed = 0;
    const server = await serve((req, res) => {
      if (req.url?.startsWith('/api/v1/nodes/n1')) return answerNode(req, res, { method: 'GET', url: '', body: '' });
      asked++; // never answered
      res.once('close', () => closed++);
    });
    const client = clientFor(loadKubeConfig(kubeconfig(tempDir(), server.url, '    token: t\n')));
    const stop = new AbortController();
    const watching = client.watch({ signal: stop.signal, onNode: () => {}, delay: async () => {} });
    const deadline = Date.now() + 5_000;
    while (asked === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    stop.abort();
    await watching;
    while (closed === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect([asked, closed]).toEqual([1, 1]);
  });

  it('a watch stream split inside its lines is read whole; an ERROR 410 event relists and watches from the new version', async () => {
    let gets = 0;
    const watches: URLSearchParams[] = [];
    const line = (type: string, object: unknown) => `${JSON.stringify({ type, object })}\n`;
    const server = await serve((req, res) => {
      const url = new URL(req.url!, 'http://x');
      res.setHeader('content-type', 'application/json');
      if (url.pathname === '/api/v1/nodes/n1') {
        gets++;
        res.end(JSON.stringify(nodeJson(gets === 1 ? '5' : '20', { 'nvidia.com/cc.mode': gets === 1 ? 'on' : 'off' })));
        return;
      }
      watches.push(url.searchParams);
      if (watches.length > 1) return; // stays open
      const text =
        line('MODIFIED', nodeJson('6', { 'nvidia.com/cc.mode': 'devtools' })) +
        line('BOOKMARK', { kind: 'Node', metadata: { resourceVersion: '9' } }) +
        line('ERROR', { kind: 'Status', status: 'Failure', code: 410, reason: 'Expired', message: 'too old' });
      // Chunks cut inside a line, each sent on its own.
      const cuts = [0, 17, 40, text.indexOf('BOOKMARK') + 3, text.indexOf('ERROR') - 2, text.length];
      res.flushHeaders();
      const send = (i: number) => {
        if (i >= cuts.length - 1) return res.end();
        res.write(text.slice(cuts[i], cuts[i + 1]));
        setTimeout(() => send(i + 1), 15);
      };
      send(0);
    });
    const client = clientFor(loadKubeConfig(kubeconfig(tempDir(), server.url, '    token: t\n')));
    const seen: Array<[NodeUpdate, string | undefined]> = [];
    const stop = new AbortController();
    const watching = client.watch({
      signal: stop.signal,
      onNode: (node: KubeNode, update) => seen.push([update, node.labels['nvidia.com/cc.mode']]),
      delay: async () => {},
    });
    const deadline = Date.now() + 5_000;
    while (watches.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    stop.abort();
    await watching;
    expect(seen).toEqual([
      ['relist', 'on'],
      ['modified', 'devtools'],
      ['relist', 'off'],
    ]);
    expect(watches.map((q) => q.get('resourceVersion'))).toEqual(['5', '20']);
    expect(Object.fromEntries(watches[0]!)).toMatchObject({
      fieldSelector: 'metadata.name=n1',
      watch: 'true',
      allowWatchBookmarks: 'true',
      timeoutSeconds: '300',
    });
  });
});
