import { createServer, request, type Server } from 'node:http';
import path from 'node:path';
import { GpuccError, isGpuccError, localFs, messageOf } from '@gpucc/hal';
import { checkSocketPath } from '@gpucc/hal/kubelet';
import { type FakeKubelet, KUBELET_CONTROL_SOCKET } from './fake-kubelet.js';

/**
 * The control channel between `gpucc-sim kubelet-*` commands and a running `gpucc-sim kubelet`:
 * small JSON requests over HTTP on a unix socket in the node's `.gpucc-sim/` directory.
 *   GET  /status                      → KubeletState
 *   POST /allocate {resource, count}  → KubeletAllocation (409 with the error when refused)
 *   POST /restart  {delayMs}          → KubeletState after the restart
 */
export async function serveControl(kubelet: FakeKubelet): Promise<{ close(): Promise<void> }> {
  const socket = checkSocketPath(path.join(kubelet.root, KUBELET_CONTROL_SOCKET));
  await localFs.removeFile(socket);
  const server: Server = createServer((req, res) => {
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify(body)}\n`);
    };
    let text = '';
    req.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
    });
    req.on('end', () => {
      handle(kubelet, req.method ?? 'GET', req.url ?? '/', text).then(
        (body) => reply(200, body),
        (error: unknown) =>
          reply(isGpuccError(error) ? 409 : 500, {
            error: isGpuccError(error) ? error.toJSON() : { message: messageOf(error) },
          }),
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socket, () => resolve());
  });
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function handle(kubelet: FakeKubelet, method: string, url: string, text: string): Promise<unknown> {
  const body = (text ? JSON.parse(text) : {}) as { resource?: string; count?: number; delayMs?: number };
  if (method === 'GET' && url === '/status') return kubelet.state();
  if (method === 'POST' && url === '/allocate') return kubelet.allocate(String(body.resource), Number(body.count));
  if (method === 'POST' && url === '/restart') {
    await kubelet.restart({ delayMs: Number(body.delayMs ?? 0) });
    return kubelet.state();
  }
  throw new Error(`no such control request: ${method} ${url}`);
}

/** Sends one control request to the fake kubelet of a node; a refusal comes back as its GpuccError. */
export function controlRequest(root: string, method: 'GET' | 'POST', url: string, body?: unknown): Promise<unknown> {
  const socketPath = path.join(path.resolve(root), KUBELET_CONTROL_SOCKET);
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path: url, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => {
        text += chunk.toString('utf8');
      });
      res.on('end', () => {
        const parsed = JSON.parse(text) as { error?: { code?: string; message?: string; hint?: string } };
        if (res.statusCode === 200) return resolve(parsed);
        const error = parsed.error ?? {};
        reject(
          new GpuccError(
            'ERR_GPUCC_SIM_KUBELET_REFUSED',
            error.message ?? `the fake kubelet answered ${res.statusCode}`,
            {
              hint: error.hint ?? 'see the output of gpucc-sim kubelet',
              details: { status: res.statusCode, ...(error.code ? { code: error.code } : {}) },
            },
          ),
        );
      });
    });
    req.on('error', (error) =>
      reject(
        new GpuccError(
          'ERR_GPUCC_SIM_KUBELET_UNREACHABLE',
          `no fake kubelet answers on ${socketPath}: ${messageOf(error)}`,
          {
            hint: `start one with: gpucc-sim kubelet ${root}`,
            cause: error,
            details: { socket: socketPath },
          },
        ),
      ),
    );
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}
