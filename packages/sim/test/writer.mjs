// A writer process for the kernel-process tests (kernel-process.test.ts), on the built package.
// node writer.mjs ROOT cycle [ROUNDS] [in-process]: moves every GPU to vfio-pci and back, ROUNDS
//   times (default: until killed), as vfio-manager does; a store refused because another writer got
//   there first is fine. Prints "ready" after its first store.
// node writer.mjs ROOT hang BDF...: unbinds each BDF (each hangs in the kernel) with a 100 ms deadline,
//   prints "hung" once every deadline passed (the kernel is up first), then reads a file and prints "read-done" when it returns.
import { readFile } from 'node:fs/promises';
import { openSimulatedHost, readNodeSpec } from '../dist/index.js';

const [root, mode, ...rest] = process.argv.slice(2);
const dev = (bdf, attr) => `sys/bus/pci/devices/${bdf}/${attr}`;
const say = (line) => process.stdout.write(`${line}\n`);

if (mode === 'cycle') {
  const rounds = rest[0] === undefined ? Number.POSITIVE_INFINITY : Number(rest[0]);
  const sysfs = openSimulatedHost(root, rest[1] === 'in-process' ? { kernel: 'in-process' } : {});
  const gpus = readNodeSpec(root)
    .devices.filter((d) => d.vendor === 0x10de && d.class >> 8 === 0x0302)
    .map((d) => d.address);
  const tryWrite = (rel, value) =>
    sysfs.write(rel, value).then(
      () => true,
      () => false,
    );
  let first = true;
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? gpus : [...gpus].reverse();
    for (const bdf of order) {
      await tryWrite(dev(bdf, 'driver_override'), 'vfio-pci');
      if (first) say('ready');
      first = false;
      if (sysfs.readlink(dev(bdf, 'driver')) !== undefined) await tryWrite(dev(bdf, 'driver/unbind'), bdf);
      await tryWrite('sys/bus/pci/drivers/vfio-pci/bind', bdf);
    }
    for (const bdf of order) {
      if (sysfs.readlink(dev(bdf, 'driver')) !== undefined) await tryWrite(dev(bdf, 'driver/unbind'), bdf);
      await tryWrite(dev(bdf, 'driver_override'), '\n');
      await tryWrite('sys/bus/pci/drivers/nvidia/bind', bdf);
    }
  }
} else if (mode === 'hang') {
  const sysfs = openSimulatedHost(root);
  await sysfs.write(dev(rest[0], 'power/control'), 'on'); // the kernel runs and answers before the clock starts
  const outcomes = await Promise.allSettled(
    rest.map((bdf) => sysfs.write(dev(bdf, 'driver/unbind'), bdf, { timeoutMs: 100 })),
  );
  say(`hung ${outcomes.map((o) => o.reason?.code ?? 'ok').join(',')}`);
  await readFile(new URL(import.meta.url));
  say('read-done');
}
