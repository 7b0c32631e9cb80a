import { type ChildProcess, spawn } from 'node:child_process';

/**
 * The writes that can block in the kernel (a sysfs store whose driver waits, e.g. an NVIDIA unbind
 * under a holder: docs/facts/real-hosts.md#an-nvidia-unbind-waits-for-the-last-client) run here,
 * never on the process's own libuv threadpool: four hung writes there would stop every file
 * operation of the daemon (health, metrics, CDI specs, the state file). Each write runs as a
 * synchronous write(2) on a worker thread of one small helper process, so a hung one holds only its
 * own worker. Not a worker thread of the daemon itself: Node joins its workers at exit, and one
 * blocked in a syscall would keep the daemon from exiting on SIGTERM. The helper ends with its
 * parent; a write still blocked in the kernel then ends with the kernel's store, as on any host.
 */

const HELPER = `
const { Worker } = require('node:worker_threads');
const WORKER = ${JSON.stringify(`
const fs = require('node:fs');
const { parentPort } = require('node:worker_threads');
parentPort.on('message', (m) => {
  try {
    if (m.op === 'write') {
      const fd = fs.openSync(m.path, fs.constants.O_WRONLY | fs.constants.O_TRUNC);
      try {
        const data = Buffer.from(m.data, 'base64');
        fs.writeSync(fd, data, 0, data.length, null);
      } finally {
        fs.closeSync(fd);
      }
    } else {
      fs.closeSync(fs.openSync(m.path, fs.constants.O_WRONLY));
    }
    parentPort.postMessage({ id: m.id, ok: true });
  } catch (e) {
    parentPort.postMessage({ id: m.id, ok: false, code: e.code, message: e.message });
  }
});
`)};
const idle = [];
let busy = 0;
process.on('message', (m) => {
  const worker = idle.pop() ?? new Worker(WORKER, { eval: true });
  busy++;
  const done = (reply) => {
    worker.off('message', done);
    busy--;
    idle.push(worker);
    process.send(reply);
  };
  worker.on('message', done);
  worker.postMessage(m);
});
// A worker blocked in the kernel cannot be joined: leave at once, the kernel finishes the store.
process.on('disconnect', () => (busy === 0 ? process.exit(0) : process.kill(process.pid, 'SIGKILL')));
`;

type Request = { op: 'write'; path: string; data: string } | { op: 'open-fifo'; path: string };
interface Reply {
  id: number;
  ok: boolean;
  code?: string;
  message?: string;
}

let helper: ChildProcess | undefined;
let nextId = 1;
const pending = new Map<number, { resolve: () => void; reject: (error: Error) => void }>();

function start(): ChildProcess {
  const child = spawn(process.execPath, ['-e', HELPER], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  child.on('message', (reply: Reply) => {
    const waiter = pending.get(reply.id);
    if (!waiter) return;
    pending.delete(reply.id);
    if (reply.ok) waiter.resolve();
    else waiter.reject(Object.assign(new Error(reply.message ?? 'write failed'), { code: reply.code }));
  });
  child.on('exit', () => {
    if (helper === child) helper = undefined;
    for (const [id, waiter] of pending) {
      pending.delete(id);
      waiter.reject(Object.assign(new Error('the blocking-writer helper exited'), { code: 'EIO' }));
    }
  });
  // Neither keeps the daemon alive: a caller waits with its own deadline, which does.
  child.unref();
  child.channel?.unref();
  return child;
}

function run(request: Request): Promise<void> {
  helper ??= start();
  const id = nextId++;
  const child = helper;
  return new Promise<void>((resolve, reject) => {
    pending.set(id, { resolve, reject });
    child.send({ id, ...request });
  });
}

/** One write(2) of `data` to a kernel attribute (O_WRONLY|O_TRUNC, never creating it), off the threadpool. */
export function writeAttributeBlocking(abs: string, data: Uint8Array): Promise<void> {
  return run({ op: 'write', path: abs, data: Buffer.from(data).toString('base64') });
}

/** Opens a FIFO for writing, which sleeps until its reader opens it (the simulated kernel's store), off the threadpool. */
export function waitForFifoReaderBlocking(abs: string): Promise<void> {
  return run({ op: 'open-fifo', path: abs });
}
