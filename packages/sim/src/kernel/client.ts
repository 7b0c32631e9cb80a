import type { Socket } from 'node:net';
import path from 'node:path';
import { GpuccError, type KernelHook, localFs, spawnDetached } from '@gpucc/hal';
import { defaultEntryModule, kernelLauncherScript } from '../tools/install.js';
import { KernelErrno } from './errno.js';
import {
  encode,
  KERNEL_LAUNCHER,
  KERNEL_LOG,
  KERNEL_PID_FILE,
  type KernelMessage,
  kernelAddress,
  lineReader,
  tryConnect,
  type WriterMessage,
} from './protocol.js';
import { checkKernelRead } from './simulator.js';

const START_WAIT_MS = 15_000;
const RETRY_MS = 20;

interface Pending {
  accepted: (fifo: string | undefined) => void;
  settled: (result: KernelMessage | undefined) => void;
}

/**
 * The writer's side of a simulated node's kernel: each store goes to the node's kernel process
 * (started on demand, detached, when none runs), and the caller blocks in a real open(2) of a FIFO,
 * on a libuv threadpool thread, until the kernel has finished the store, as a write(2) to sysfs
 * blocks while the kernel's store runs. Then it gets the store's result: success or its errno.
 */
export class KernelClient implements KernelHook {
  readonly description = 'gpucc-sim kernel (its own process)';
  private socket: Promise<Socket> | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  constructor(private readonly root: string) {}

  checkRead(relPath: string): void {
    checkKernelRead(relPath);
  }

  async write(relPath: string, data: Uint8Array): Promise<void> {
    let socket = await this.connection();
    if (socket.destroyed) {
      this.socket = undefined; // the kernel stopped since the last write: a new one starts
      socket = await this.connection();
    }
    const id = this.nextId++;
    let accepted!: (fifo: string | undefined) => void;
    let settled!: (result: KernelMessage | undefined) => void;
    const fifo = new Promise<string | undefined>((resolve) => (accepted = resolve));
    const result = new Promise<KernelMessage | undefined>((resolve) => (settled = resolve));
    this.pending.set(id, {
      accepted,
      settled: (r) => {
        accepted(undefined);
        settled(r);
      },
    });
    const message: WriterMessage = {
      op: 'write',
      id,
      pid: process.pid,
      path: relPath,
      value: Buffer.from(data).toString('base64'),
    };
    socket.write(encode(message));
    let outcome: KernelMessage | undefined;
    try {
      const fifoPath = await fifo;
      // The blocked write(2): returns when the kernel has finished the store (or stopped).
      if (fifoPath !== undefined) await localFs.waitForFifoReader(fifoPath);
      outcome = await result;
    } finally {
      this.pending.delete(id);
    }
    if (!socket.destroyed) socket.write(encode({ op: 'done', id }));
    if (outcome === undefined) throw new KernelErrno('EIO', 'the simulated kernel went away during the write');
    if ('errno' in outcome) throw new KernelErrno(outcome.errno, outcome.message.replace(/^E[A-Z0-9]+: /, ''));
  }

  /** Closes the connection (the process exits without it too: the socket does not hold it open). */
  close(): void {
    void this.socket?.then((s) => s.destroy());
    this.socket = undefined;
  }

  private connection(): Promise<Socket> {
    this.socket ??= this.open().catch((error) => {
      this.socket = undefined;
      throw error;
    });
    return this.socket;
  }

  private async open(): Promise<Socket> {
    const real = localFs.realPath(this.root); // the address is the node's real path, whoever names it how
    const since = Date.now();
    let started = false;
    for (;;) {
      const socket = await tryConnect(kernelAddress(real));
      if (socket) return this.attach(socket);
      if (!started) {
        startKernel(real);
        started = true;
      }
      if (Date.now() - since > START_WAIT_MS) {
        throw new GpuccError(
          'ERR_GPUCC_SIM_KERNEL_UNAVAILABLE',
          `the simulated kernel of ${this.root} did not start within ${START_WAIT_MS} ms`,
          {
            hint: `see ${path.join(this.root, KERNEL_LOG)}, or run it in the foreground: gpucc-sim kernel ${this.root}`,
            details: { root: this.root },
          },
        );
      }
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  }

  private attach(socket: Socket): Socket {
    socket.unref(); // an idle connection must not keep the writer alive
    socket.on(
      'data',
      lineReader<KernelMessage>((message) => {
        const pending = this.pending.get(message.id);
        if (!pending) return;
        if ('fifo' in message) pending.accepted(message.fifo);
        else pending.settled(message);
      }),
    );
    socket.on('error', () => {});
    socket.on('close', () => {
      if (this.socket) this.socket = undefined;
      for (const pending of this.pending.values()) pending.settled(undefined);
    });
    return socket;
  }
}

/**
 * Starts the node's kernel process, detached from this one (its own session: a kill of this
 * process or its group never reaches it). It runs the launcher `gpucc-sim create` installed, else
 * this package's bundled entry. Two writers starting one each is fine: one binds the address, the
 * other exits at once.
 */
export function startKernel(root: string): number | undefined {
  const launcher = path.join(root, KERNEL_LAUNCHER);
  const args = localFs.exists(launcher)
    ? [launcher, root]
    : ['--input-type=module', '-e', kernelLauncherScript(defaultEntryModule()), '--', root];
  return spawnDetached({ command: process.execPath, args, logFile: path.join(root, KERNEL_LOG) });
}

/** The pid of the node's running kernel process, if one runs. */
export function kernelPid(root: string): number | undefined {
  let pid: number;
  try {
    pid = Number(localFs.readText(path.join(root, KERNEL_PID_FILE)).trim());
  } catch {
    return undefined; // no kernel started yet
  }
  return alive(pid) ? pid : undefined;
}

/** Stops the node's kernel process if one runs, waking every blocked writer with EIO; resolves once it is gone. */
export async function stopKernel(root: string): Promise<void> {
  if (!localFs.exists(root)) return; // a deleted node's kernel exits by itself
  const real = localFs.realPath(root);
  const pid = kernelPid(real);
  const socket = await tryConnect(kernelAddress(real));
  if (socket) {
    socket.on('error', () => {});
    socket.write(encode({ op: 'stop' }));
    await new Promise((resolve) => socket.once('close', resolve));
  }
  while (pid !== undefined && alive(pid)) await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
