import { createServer, type Server, type Socket } from 'node:net';
import path from 'node:path';
import { localFs } from '@gpucc/hal';
import { NODE_FILE } from '../node/paths.js';
import {
  encode,
  KERNEL_FIFO_DIR,
  KERNEL_PID_FILE,
  type KernelMessage,
  kernelAddress,
  lineReader,
  tryConnect,
  type WriterMessage,
} from './protocol.js';
import { KernelSimulator, serialKey } from './simulator.js';

/**
 * The simulated kernel of one node as its own process (`gpucc-sim kernel DIR`, or started on demand
 * by the first writer). Writers only ask; this process performs each store to its end, so a writer
 * killed at any point leaves a store done or not started, and stores from all processes are
 * serialized here as the kernel serializes them. It exits when no writer has been connected for
 * `idleMs` and nothing that ends by itself is pending, or when the node is deleted.
 */

const FIFO_BATCH = 8;
const NODE_CHECK_MS = 500;

export interface KernelServerOptions {
  /**
   * Exit after this long without writers (default: GPUCC_SIM_KERNEL_IDLE_MS, else 2000 ms);
   * Infinity: serve until stopped or the node is deleted.
   */
  idleMs?: number;
}

interface Request {
  id: number;
  fifo: string;
  connection: Connection;
  /** The FIFO's read end, open while the writer leaves its blocked open(2). */
  readerFd?: number;
}

interface Connection {
  socket: Socket;
  requests: Map<number, Request>;
  closed: boolean;
}

export class KernelServer {
  private readonly kernel: KernelSimulator;
  private readonly server: Server;
  private readonly connections = new Set<Connection>();
  private readonly freeFifos: string[] = [];
  private fifoCount = 0;
  private readonly idleMs: number;
  private idleTimer: NodeJS.Timeout | undefined;
  private nodeCheck: NodeJS.Timeout | undefined;
  private stopping = false;
  /** The store in progress or queued last per device: stores to one device run one at a time. */
  private readonly queues = new Map<string, Promise<void>>();
  private markStopped!: () => void;
  /** Settles once the server has stopped (the process entry exits then). */
  readonly stopped = new Promise<void>((resolve) => (this.markStopped = resolve));

  private constructor(
    readonly root: string,
    options: KernelServerOptions,
  ) {
    this.kernel = new KernelSimulator(root);
    this.idleMs = options.idleMs ?? (Number(process.env.GPUCC_SIM_KERNEL_IDLE_MS) || 2000);
    this.server = createServer((socket) => this.accept(socket));
  }

  /**
   * Starts serving `root`; undefined when another kernel already serves it (the address is the lock).
   */
  static async start(root: string, options: KernelServerOptions = {}): Promise<KernelServer | undefined> {
    const real = localFs.realPath(root);
    const server = new KernelServer(real, options);
    const address = kernelAddress(real);
    // A socket file (not Linux) outlives a killed kernel: one that nobody answers on is left over.
    if (!address.startsWith('\0') && localFs.exists(address)) {
      const live = await tryConnect(address);
      if (live) live.destroy();
      else localFs.removeSync(address);
    }
    const listening = await new Promise<boolean>((resolve, reject) => {
      server.server.once('error', (error: NodeJS.ErrnoException) =>
        error.code === 'EADDRINUSE' ? resolve(false) : reject(error),
      );
      server.server.listen(address, () => resolve(true));
    });
    if (!listening) return undefined;
    localFs.removeSync(path.join(real, KERNEL_FIFO_DIR)); // FIFOs of an earlier kernel
    localFs.makeDir(path.join(real, KERNEL_FIFO_DIR), 0o700);
    localFs.writeFileSync(path.join(real, KERNEL_PID_FILE), `${process.pid}\n`);
    server.nodeCheck = setInterval(() => {
      if (!localFs.exists(path.join(real, NODE_FILE))) server.stop();
    }, NODE_CHECK_MS);
    server.nodeCheck.unref();
    server.armIdle();
    return server;
  }

  private accept(socket: Socket): void {
    const connection: Connection = { socket, requests: new Map(), closed: false };
    this.connections.add(connection);
    this.armIdle();
    socket.on(
      'data',
      lineReader<WriterMessage>((message) => this.handle(connection, message)),
    );
    socket.on('error', () => {});
    socket.on('close', () => {
      connection.closed = true;
      this.connections.delete(connection);
      // A writer gone mid-write: its store still runs to its end below; only the FIFO is let go.
      for (const request of connection.requests.values()) this.release(request);
      this.armIdle();
    });
  }

  private handle(connection: Connection, message: WriterMessage): void {
    if (message.op === 'stop') {
      this.stop();
      return;
    }
    if (message.op === 'done') {
      const request = connection.requests.get(message.id);
      if (request) this.release(request);
      return;
    }
    if (this.stopping) {
      this.send(connection, { id: message.id, errno: 'EIO', message: 'the simulated kernel is stopping' });
      return;
    }
    const request: Request = { id: message.id, fifo: this.takeFifo(), connection };
    connection.requests.set(request.id, request);
    this.send(connection, { id: request.id, fifo: request.fifo });
    const data = Buffer.from(message.value, 'base64');
    this.serialized(serialKey(message.path, data), () => this.kernel.write(message.path, data, message.pid)).then(
      () => this.finish(request, { id: request.id, ok: true }),
      (error: { code?: string; message?: string }) =>
        this.finish(request, { id: request.id, errno: error.code ?? 'EIO', message: error.message ?? String(error) }),
    );
  }

  private async serialized(key: string, store: () => Promise<void>): Promise<void> {
    const previous = this.queues.get(key) ?? Promise.resolve();
    let release!: () => void;
    const tail = previous.then(() => new Promise<void>((resolve) => (release = resolve)));
    this.queues.set(key, tail);
    await previous;
    try {
      await store();
    } finally {
      release();
      if (this.queues.get(key) === tail) this.queues.delete(key);
    }
  }

  /** The store returned: wake the writer's blocked open(2), then tell it how the store ended. */
  private finish(request: Request, result: KernelMessage): void {
    if (request.connection.closed) {
      this.freeFifos.push(request.fifo);
      this.armIdle();
      return;
    }
    request.readerFd = localFs.openFifoReader(request.fifo);
    this.send(request.connection, result);
  }

  /** The writer has left its open(2) (or is gone): close the read end and reuse the FIFO. */
  private release(request: Request): void {
    if (request.readerFd === undefined) return; // still in the kernel: finish() frees it
    localFs.closeFd(request.readerFd);
    request.readerFd = undefined;
    request.connection.requests.delete(request.id);
    this.freeFifos.push(request.fifo);
  }

  private takeFifo(): string {
    if (this.freeFifos.length === 0) {
      const batch = Array.from({ length: FIFO_BATCH }, (_, i) =>
        path.join(this.root, KERNEL_FIFO_DIR, `fifo.${this.fifoCount + i}`),
      );
      localFs.makeFifos(batch);
      this.fifoCount += FIFO_BATCH;
      this.freeFifos.push(...batch);
    }
    return this.freeFifos.pop()!;
  }

  private send(connection: Connection, message: KernelMessage): void {
    if (!connection.closed) connection.socket.write(encode(message));
  }

  /** Exit once idle: no writer connected and nothing pending that ends by itself. */
  private armIdle(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    if (this.stopping || this.connections.size > 0 || this.idleMs === Number.POSITIVE_INFINITY) return;
    this.idleTimer = setTimeout(() => {
      if (this.kernel.busy()) this.armIdle();
      else this.stop();
    }, this.idleMs);
  }

  /**
   * Stops: every writer still blocked is woken with EIO (a store that never returned stays undone),
   * the listener closes, the pid file goes.
   */
  stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    clearTimeout(this.idleTimer);
    clearInterval(this.nodeCheck);
    this.kernel.dispose();
    for (const connection of this.connections) {
      for (const request of connection.requests.values()) {
        if (request.readerFd !== undefined) continue;
        try {
          request.readerFd = localFs.openFifoReader(request.fifo);
        } catch {
          continue; // the node was deleted under us
        }
        this.send(connection, { id: request.id, errno: 'EIO', message: 'the simulated kernel stopped' });
      }
      connection.socket.end();
    }
    // Writers close their end on ours; one that does not is cut off.
    setTimeout(() => {
      for (const connection of this.connections) connection.socket.destroy();
    }, 1000).unref();
    this.server.close(() => {
      try {
        if (localFs.readText(path.join(this.root, KERNEL_PID_FILE)).trim() === String(process.pid)) {
          localFs.removeSync(path.join(this.root, KERNEL_PID_FILE));
        }
      } catch {
        // the node is gone
      }
      this.markStopped();
    });
  }
}

/**
 * The process entry (`gpucc-sim kernel DIR`, the node's kernel launcher): serves until idle or
 * stopped; false at once when another kernel serves the node (two writers each started one).
 */
export async function serveKernel(root: string, options: KernelServerOptions = {}): Promise<boolean> {
  const server = await KernelServer.start(root, options);
  if (!server) return false;
  const stop = () => server.stop();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  await server.stopped;
  process.off('SIGTERM', stop);
  process.off('SIGINT', stop);
  return true;
}
