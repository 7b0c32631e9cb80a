import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { createNode, FakeKubelet, openSimulatedHost } from '@gpucc/sim';
import { DevicePluginClient } from '@gpucc/hal/kubelet';
import { bind } from '@gpucc/vfio-manager';
import { silentLogger } from '../src/fixtures/logs.js';
import { repositoryBinaries } from '../src/suite/operands.js';
const root = mkdtempSync('/dev/shm/prof-');
createNode(root, 'hgx-h100-8');
await bind(openSimulatedHost(root), { selection: { all: true }, nvswitches: true, allowForeignGroupMembers: false, dryRun: false }, { logger: silentLogger(), loadModules: false, modprobe: {}, unbindTimeoutMs: 10000, deviceNodeTimeoutMs: 10000 });
const plain = root + '-plain';
cpSync(root, plain, { recursive: true, verbatimSymlinks: true, filter: (src) => !src.endsWith('.sock') && !src.includes('.gpucc-sim') });

const kubelet = new FakeKubelet({ root: plain });
await kubelet.start();
const exe = process.env.EXE;
const walls: number[] = []; const cpus: number[] = [];
for (let i = 0; i < Number(process.env.N ?? 5); i++) {
  const t = performance.now();
  const sea = process.env.SEA;
  const args = [...(process.env.NODEARGS ? process.env.NODEARGS.split(' ') : []), ...(sea ? [] : [exe ?? repositoryBinaries()['sandbox-device-plugin']]), 'run', '--host-root', plain, '--nvswitches', '--metrics-address', '127.0.0.1:0', '--log-level', process.env.LOG ?? 'warn'];
  const before = kubelet.state().resources['nvidia.com/pgpu']?.registrations ?? 0;
  const child = spawn(sea ?? process.execPath, args, { stdio: ['ignore', process.env.LOG ? 'inherit' : 'ignore', 'inherit'], env: { ...process.env, NODE_OPTIONS: process.env.CHILD_NODE_OPTIONS ?? '', ...(process.env.ARENA ? { MALLOC_ARENA_MAX: process.env.ARENA } : {}) } });
  await kubelet.waitFor((s) => (s.resources['nvidia.com/pgpu']?.registrations ?? 0) > before && s.resources['nvidia.com/nvswitch']?.allocatable === 4, 20000);
  const cpu = Number(readFileSync(`/proc/${child.pid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
  walls.push(performance.now() - t); cpus.push(cpu);
  const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) / 1024;
  await new Promise((r) => setTimeout(r, 2000));
  const idle = rss();
  if (process.env.SMAPS) { const { execFileSync } = await import('node:child_process'); console.log(execFileSync('python3', ['/tmp/smaps.py', String(child.pid)], { encoding: 'utf8' })); }
  if (process.env.SNAPSHOT) { child.kill('SIGUSR1'); await new Promise((r) => setTimeout(r, 5000)); }
  console.log('idle', readFileSync(`/proc/${child.pid}/status`, 'utf8').split('\n').filter((l) => /Rss|Threads/.test(l)).join(' ').replace(/\s+/g, ' '));
  const sock = path.join(plain, 'var/lib/kubelet/device-plugins/sandbox-pgpu.sock');
  const clients = Array.from({ length: 16 }, () => new DevicePluginClient(sock));
  const ids = ['23', '27', '31', '35', '39', '43', '47', '51'];
  let n = 0;
  const lat: number[] = [];
  await Promise.all(clients.map(async (c) => { while (n < 5000) { n++; const t0 = performance.now(); await c.allocate({ container_requests: [{ devices_ids: [ids[n % 8]!, ids[(n + 3) % 8]!] }] }); lat.push(performance.now() - t0); } }));
  lat.sort((a, b) => a - b);
  console.log(`Allocate 16 callers: median ${lat[2500]!.toFixed(2)} p99 ${lat[4950]!.toFixed(2)} ms`);
  for (const c of clients) c.close();
  for (const wait of [2000, 8000, 10000]) { await new Promise((r) => setTimeout(r, wait)); console.log('after load +', wait, 'ms', rss().toFixed(1)); }
  const detail = () => readFileSync(`/proc/${child.pid}/status`, 'utf8').split('\n').filter((l) => /Rss|Threads/.test(l)).join(' ').replace(/\s+/g, ' ');
  console.log(`idle RSS ${idle.toFixed(1)} MB, after 5000 Allocate ${rss().toFixed(1)} MB`, detail());
  const ex = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await ex;
}
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!.toFixed(0);
console.log(`wall median ${med(walls)} ms, cpu median ${med(cpus)} ms (${cpus.map((c) => c.toFixed(0)).join(' ')})`);
await kubelet.stop();
