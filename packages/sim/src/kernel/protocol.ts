import { createHash } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import path from 'node:path';
import { SIM_DIR } from '../node/paths.js';

/**
 * The wire between a writer and its node's simulated kernel process: newline-delimited JSON over a
 * unix socket, plus one FIFO per write in flight on which the writer blocks in open(2) until the
 * kernel has finished the store (docs: packages/sim/README.md "The simulated kernel").
 *
 *   writer → kernel   {op:'write', id, pid, path, value}   value: base64 of the bytes written
 *   kernel → writer   {id, fifo}                           accepted: block on this FIFO now
 *   kernel → writer   {id, ok:true} | {id, errno, message} after opening the FIFO's read end
 *   writer → kernel   {op:'done', id}                      the kernel closes the read end, frees the FIFO
 *   writer → kernel   {op:'stop'}                          the kernel releases every writer and exits
 */

export const KERNEL_PID_FILE = `${SIM_DIR}/kernel.pid`;
export const KERNEL_LOG = `${SIM_DIR}/kernel.log`;
export const KERNEL_FIFO_DIR = `${SIM_DIR}/kernel-fifos`;
/** The kernel launcher `gpucc-sim create` installs beside the fake tools (tools/install.ts). */
export const KERNEL_LAUNCHER = `${SIM_DIR}/kernel.mjs`;
const FILE_SOCKET = `${SIM_DIR}/kernel.sock`;

export type WriterMessage =
  | { op: 'write'; id: number; pid: number; path: string; value: string }
  | { op: 'done'; id: number }
  | { op: 'stop' };

export type KernelMessage =
  | { id: number; fifo: string }
  | { id: number; ok: true }
  | { id: number; errno: string; message: string };

/**
 * The kernel's socket address. On Linux an abstract socket named after the node's real path: it
 * vanishes with the kernel process (no stale file after a kill -9), has no 108-byte path limit, and
 * binding it is the one-kernel-per-node lock. Elsewhere a socket file under `.gpucc-sim/`.
 */
export function kernelAddress(realRoot: string): string {
  if (process.platform !== 'linux') return path.join(realRoot, FILE_SOCKET);
  const digest = createHash('sha256').update(realRoot).digest('hex').slice(0, 32);
  return `\0gpucc-sim-kernel-${digest}`;
}

/** Splits a byte stream into JSON messages, one per line. */
export function lineReader<T>(onMessage: (message: T) => void): (chunk: Buffer) => void {
  let pending = '';
  return (chunk) => {
    pending += chunk.toString('utf8');
    let newline = pending.indexOf('\n');
    while (newline >= 0) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      if (line.trim() !== '') onMessage(JSON.parse(line) as T);
      newline = pending.indexOf('\n');
    }
  };
}

export function encode(message: WriterMessage | KernelMessage): string {
  return `${JSON.stringify(message)}\n`;
}

/** A connection to the address, or undefined when nothing listens there. */
export function tryConnect(address: string): Promise<Socket | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ path: address });
    socket.once('connect', () => {
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', () => resolve(undefined));
  });
}
