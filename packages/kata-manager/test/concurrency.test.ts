// A CDI loader reads the spec whenever it likes (containerd and CRI-O re-read on every fsnotify
// event). A reader thread parses the file in a tight loop while the writer replaces it a thousand
// times: every read must be one whole version, never a torn or empty file.
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { HostRoot } from '@gpucc/hal';
import { tempDir } from '@gpucc/testbed/vitest';
import { describe, expect, it } from 'vitest';
import { writeSpecFile } from '../src/apply.js';
import { type CdiSpec, renderSpec } from '../src/spec.js';

const READER = `
import { readFileSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
const { parse } = await import(workerData.yaml);
const stop = new Int32Array(workerData.stop);
const seen = { reads: 0, a: 0, b: 0, missing: 0, torn: [] };
parentPort.postMessage('ready');
while (Atomics.load(stop, 0) === 0) {
  let text;
  try { text = readFileSync(workerData.file, 'utf8'); } catch { seen.missing++; continue; }
  seen.reads++;
  let devices = -1;
  try { devices = parse(text).devices.length; } catch {}
  if (text === workerData.a && devices === workerData.aDevices) seen.a++;
  else if (text === workerData.b && devices === workerData.bDevices) seen.b++;
  else if (seen.torn.length < 3) seen.torn.push(text.slice(0, 200));
  else seen.torn.push('…');
}
parentPort.postMessage(seen);
`;

function spec(groups: number[]): CdiSpec {
  return {
    cdiVersion: '0.5.0',
    kind: 'nvidia.com/pgpu',
    devices: groups.map((g) => ({
      name: String(g),
      containerEdits: { deviceNodes: [{ path: '/dev/vfio/vfio' }, { path: `/dev/vfio/${g}` }] },
    })),
  };
}

describe('atomic replacement', () => {
  it('a reader parsing in a tight loop sees only whole specs while the writer rewrites it 1000 times', async () => {
    const root = tempDir('gpucc-kata-race-');
    mkdirSync(path.join(root, 'var/run/cdi'), { recursive: true });
    const sysfs = new HostRoot(root);
    const a = renderSpec(spec([23, 27, 31, 35, 39, 43, 47, 51]), 'yaml');
    const b = renderSpec(spec([23, 27]), 'yaml');
    const file = 'var/run/cdi/nvidia.com-pgpu.yaml';
    await writeSpecFile(sysfs, file, a);

    const script = path.join(root, 'reader.mjs');
    writeFileSync(script, READER);
    const stop = new SharedArrayBuffer(4);
    const yaml = pathToFileURL(createRequire(import.meta.url).resolve('yaml')).href;
    const worker = new Worker(pathToFileURL(script), {
      workerData: { file: path.join(root, file), a, b, aDevices: 8, bDevices: 2, stop, yaml },
    });
    const messages: unknown[] = [];
    const done = new Promise<{ reads: number; a: number; b: number; missing: number; torn: string[] }>(
      (resolve, reject) => {
        worker.on('message', (m) => (m === 'ready' ? messages.push(m) : resolve(m)));
        worker.on('error', reject);
      },
    );
    while (messages.length === 0) await new Promise((r) => setTimeout(r, 5));

    const writer = sysfs.withRecorder();
    for (let i = 0; i < 1000; i++) await writeSpecFile(writer, file, i % 2 === 0 ? b : a);
    Atomics.store(new Int32Array(stop), 0, 1);
    const seen = await done;
    await worker.terminate();

    expect(writer.recorder.writes).toBe(1000);
    expect(seen.torn).toEqual([]);
    expect(seen.missing).toBe(0); // rename replaces the file: there is never a moment without one
    expect(seen.reads).toBe(seen.a + seen.b);
    expect(seen.a).toBeGreaterThan(0);
    expect(seen.b).toBeGreaterThan(0);
  }, 60_000);
});
