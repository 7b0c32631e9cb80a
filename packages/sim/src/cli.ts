import path from 'node:path';
import { endQuietlyWhenStdoutCloses, GpuccError, HostRoot, isGpuccError } from '@gpucc/hal';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { registerApiServerCommands } from './apiserver/commands.js';
import { formatInspect, inspectHost } from './inspect.js';
import { kernelPid, serveKernel, stopKernel } from './kernel/index.js';
import { registerKubeletCommands } from './kubelet/commands.js';
import { createNode } from './node/create.js';
import { breakAttribute, clearFaults, injectFault } from './node/faults.js';
import { holdGpu, releaseHolder, vmHold } from './node/holders.js';
import { NVIDIA_DRIVER_KINDS, type NvidiaDriverKind } from './node/spec.js';
import { FAULT_KINDS, type FaultKind, readNodeSpec, writeToolSettings } from './node/state.js';
import { readWriteLog } from './node/write-log.js';
import { PROFILES, parseSimLockdown, parseTee } from './profiles/profiles.js';
import { installFakeTools } from './tools/index.js';

function int(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a non-negative integer');
  return n;
}

function program(out: (text: string) => void): Command {
  const cli = new Command('gpucc-sim')
    .description('Simulated GPU nodes for gpucc: create, inspect, break')
    .exitOverride()
    .configureOutput({ writeOut: out, writeErr: (t) => process.stderr.write(t) });

  cli
    .command('create')
    .description('lay out a simulated node in DIR (a new or empty directory)')
    .argument('<dir>')
    .requiredOption('--profile <name>', `one of: ${PROFILES.map((p) => p.name).join(', ')}`)
    .option('--tee <tee>', 'host TEE: sev-snp, tdx or none (default: the profile’s)', parseTee)
    .option('--gpus <n>', 'scale profile: number of GPU cards', int)
    .option('--functions <n>', 'scale profile: functions per card (1-4)', int)
    .option('--no-vfio-module', 'start without vfio_pci loaded (exercises modprobe)')
    .option('--nvidia-driver <kind>', 'NVIDIA driver build: datacenter (no unbind lock) or vgpu-host', nvidiaDriverKind)
    .option('--kernel-release <release>', 'uname -r of the node (default a 6.17 release)')
    .option('--lockdown <level>', 'kernel lockdown: none, integrity, confidentiality or not-built', parseSimLockdown)
    .option('--cpu-tee <tee>', 'the TEE the CPU and BIOS offer, its cpuinfo flag (default: --tee)', parseTee)
    .option('--vmd', 'add an Intel VMD controller with an NVMe drive in PCI domain 10000 (as on Intel TDX servers)')
    .option('--iommufd', 'the kernel has iommufd: /dev/iommu (default: the profile’s choice)')
    .option('--no-iommufd', 'a kernel without iommufd: no /dev/iommu, no VFIO cdevs')
    .option('--vfio-cdev', 'iommufd kernel with CONFIG_VFIO_DEVICE_CDEV: per-device VFIO cdevs on bind (the default)')
    .option('--no-vfio-cdev', 'iommufd kernel without CONFIG_VFIO_DEVICE_CDEV: /dev/iommu but no VFIO cdevs')
    .action(
      (
        dir: string,
        o: {
          profile: string;
          tee?: ReturnType<typeof parseTee>;
          gpus?: number;
          functions?: number;
          vfioModule: boolean;
          nvidiaDriver?: NvidiaDriverKind;
          kernelRelease?: string;
          lockdown?: ReturnType<typeof parseSimLockdown>;
          cpuTee?: ReturnType<typeof parseTee>;
          vmd?: boolean;
          iommufd?: boolean;
          vfioCdev?: boolean;
        },
      ) => {
        const { root, node } = createNode(
          dir,
          o.profile,
          {
            ...(o.tee ? { tee: o.tee } : {}),
            ...(o.gpus === undefined ? {} : { gpus: o.gpus }),
            ...(o.functions === undefined ? {} : { functionsPerCard: o.functions }),
            vfioLoaded: o.vfioModule,
            ...(o.nvidiaDriver ? { nvidiaDriver: o.nvidiaDriver } : {}),
            ...(o.kernelRelease ? { kernelRelease: o.kernelRelease } : {}),
            ...(o.lockdown ? { lockdown: o.lockdown } : {}),
            ...(o.cpuTee ? { cpuTee: o.cpuTee } : {}),
            ...(o.vmd ? { vmd: true } : {}),
            ...(o.iommufd === undefined ? {} : { iommufd: o.iommufd }),
            ...(o.vfioCdev === undefined ? {} : { vfioCdev: o.vfioCdev }),
          },
          installFakeTools,
        );
        out(
          `created simulated node ${root}: profile ${node.profile}, ${node.devices.length} PCI functions, TEE ${node.tee}\n`,
        );
      },
    );

  cli
    .command('inspect')
    .description('print what gpucc discovers under DIR (any directory laid out like a host)')
    .argument('<dir>')
    .option('--json', 'machine-readable output')
    .action((dir: string, o: { json?: boolean }) => {
      const report = inspectHost(new HostRoot(dir));
      out(o.json ? `${JSON.stringify(report, null, 2)}\n` : formatInspect(report));
    });

  cli
    .command('profiles')
    .description('list the profiles')
    .action(() => {
      for (const p of PROFILES) out(`${p.name.padEnd(18)} ${p.description} (TEE ${p.defaultTee})\n`);
    });

  cli
    .command('fault')
    .description('inject a fault for the kernel simulator or the fake tools')
    .argument('<dir>')
    .option('--kind <kind>', `one of: ${FAULT_KINDS.join(', ')}`)
    .option('--device <bdf>', 'the device it applies to (default: every device)')
    .option('--errno <errno>', 'errno for *-error faults, e.g. EBUSY')
    .option('--delay-ms <ms>', 'delay for *-hang and devnode-delay (hang: default forever)', int)
    .option('--times <n>', 'fire only this many times', int)
    .option('--after-writes <n>', 'kill-after-writes: die right after the N-th successful write', int)
    .option('--clear', 'remove every fault (or every fault of --kind)')
    .action(
      async (
        dir: string,
        o: {
          kind?: string;
          device?: string;
          errno?: string;
          delayMs?: number;
          times?: number;
          afterWrites?: number;
          clear?: boolean;
        },
      ) => {
        const root = path.resolve(dir);
        readNodeSpec(root);
        if (o.clear) {
          await clearFaults(root, o.kind as FaultKind | undefined);
          out('faults cleared\n');
          return;
        }
        if (!o.kind) throw usage('fault needs --kind (or --clear)');
        await injectFault(root, {
          kind: o.kind as FaultKind,
          ...(o.device ? { device: o.device } : {}),
          ...(o.errno ? { errno: o.errno } : {}),
          ...(o.delayMs === undefined ? {} : { delayMs: o.delayMs }),
          ...(o.times === undefined ? {} : { times: o.times }),
          ...(o.afterWrites === undefined ? {} : { afterWrites: o.afterWrites }),
        });
        out(`fault ${o.kind} injected${o.device ? ` on ${o.device}` : ''}\n`);
      },
    );

  const holds = [
    [
      'hold',
      'a process holding a GPU on nvidia (its /dev/nvidia<minor> open): an unbind of it blocks until release',
      'nvidia-persistenced',
      holdGpu,
    ],
    [
      'vm-hold',
      'a VM (qemu) holding a device on VFIO: its group or cdev node open, enable 1',
      'qemu-system-x86_64',
      vmHold,
    ],
  ] as const;
  for (const [name, what, comm, hold] of holds) {
    cli
      .command(name)
      .description(`add ${what}`)
      .argument('<dir>')
      .requiredOption('--device <bdf>')
      .option('--comm <name>', `process name (default ${comm})`)
      .option('--pid <pid>', 'pid to use (default: the first free from 4000)', int)
      .action((dir: string, o: { device: string; comm?: string; pid?: number }) => {
        const pid = hold(path.resolve(dir), o.device, holdOptions(o));
        out(`${o.comm ?? comm} (pid ${pid}) holds ${o.device}\n`);
      });
  }

  cli
    .command('release')
    .description('end a holder added with hold or vm-hold (a blocked unbind of its GPU then completes)')
    .argument('<dir>')
    .requiredOption('--pid <pid>', 'the pid hold or vm-hold printed', int)
    .action((dir: string, o: { pid: number }) => {
      releaseHolder(path.resolve(dir), o.pid);
      out(`pid ${o.pid} released\n`);
    });

  cli
    .command('break')
    .description('make a device attribute missing or malformed, as a buggy kernel or bad capture would')
    .argument('<dir>')
    .requiredOption('--device <bdf>')
    .requiredOption('--attribute <name>', 'e.g. vendor, numa_node, class')
    .option('--value <text>', 'replace the content verbatim (no newline added)')
    .option('--missing', 'delete the attribute')
    .action((dir: string, o: { device: string; attribute: string; value?: string; missing?: boolean }) => {
      if ((o.value === undefined) === !o.missing) throw usage('break needs exactly one of --value or --missing');
      breakAttribute(path.resolve(dir), o.device, o.attribute, o.missing ? 'missing' : o.value!);
      out(`${o.device}/${o.attribute} ${o.missing ? 'removed' : 'replaced'}\n`);
    });

  cli
    .command('writes')
    .description('print the sysfs writes the simulated kernel received (all processes)')
    .argument('<dir>')
    .option('--json', 'one JSON object per line')
    .action((dir: string, o: { json?: boolean }) => {
      for (const w of readWriteLog(path.resolve(dir))) {
        out(
          o.json
            ? `${JSON.stringify(w)}\n`
            : `${new Date(w.t).toISOString()} pid ${w.pid} ${w.path} <- ${JSON.stringify(w.value)}: ${w.result}\n`,
        );
      }
    });

  cli
    .command('kernel')
    .description(
      'run the node’s simulated kernel in the foreground (writers start one on demand; it exits when idle), or --stop it',
    )
    .argument('<dir>')
    .option('--stop', 'stop the running kernel, waking every blocked writer with EIO')
    .option('--idle-ms <ms>', 'exit after this long without writers (default: run until stopped)', int)
    .action(async (dir: string, o: { stop?: boolean; idleMs?: number }) => {
      const root = path.resolve(dir);
      readNodeSpec(root);
      if (o.stop) {
        const pid = kernelPid(root);
        await stopKernel(root);
        out(pid === undefined ? 'no kernel was running\n' : `kernel (pid ${pid}) stopped\n`);
        return;
      }
      if (!(await serveKernel(root, { idleMs: o.idleMs ?? Number.POSITIVE_INFINITY }))) {
        out(`a kernel already serves ${root} (pid ${kernelPid(root) ?? '?'})\n`);
      }
    });

  cli
    .command('tool-latency')
    .description('set the fake CC tool latencies (real hardware: start 150, set 150, reset 1700)')
    .argument('<dir>')
    .option('--start-ms <ms>', 'start-up per call', int)
    .option('--set-ms <ms>', 'knob write per device', int)
    .option('--reset-ms <ms>', 'reset + boot + verify per device', int)
    .action((dir: string, o: { startMs?: number; setMs?: number; resetMs?: number }) => {
      const root = path.resolve(dir);
      readNodeSpec(root);
      writeToolSettings(root, {
        ...(o.startMs === undefined ? {} : { startMs: o.startMs }),
        ...(o.setMs === undefined ? {} : { setMs: o.setMs }),
        ...(o.resetMs === undefined ? {} : { resetMs: o.resetMs }),
      });
      out('tool latency updated\n');
    });

  registerKubeletCommands(cli, out);
  registerApiServerCommands(cli, out);
  return cli;
}

function holdOptions(o: { comm?: string; pid?: number }) {
  return { ...(o.comm ? { comm: o.comm } : {}), ...(o.pid === undefined ? {} : { pid: o.pid }) };
}

function nvidiaDriverKind(value: string): NvidiaDriverKind {
  if ((NVIDIA_DRIVER_KINDS as readonly string[]).includes(value)) return value as NvidiaDriverKind;
  throw new InvalidArgumentError(`expected one of ${NVIDIA_DRIVER_KINDS.join(', ')}`);
}

function usage(message: string): GpuccError {
  return new GpuccError('ERR_GPUCC_USAGE', message, { hint: 'see gpucc-sim --help' });
}

/** Runs the CLI; returns the exit code (0 ok, 1 failure, 2 bad usage). */
export async function main(
  argv: string[],
  out: (text: string) => void = (t) => process.stdout.write(t),
): Promise<number> {
  endQuietlyWhenStdoutCloses();
  try {
    await program(out).parseAsync(argv);
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.exitCode === 0 ? 0 : 2;
    }
    if (isGpuccError(error)) {
      process.stderr.write(`gpucc-sim: ${error.describe()}\n`);
      return error.code === 'ERR_GPUCC_USAGE' || error.code.startsWith('ERR_GPUCC_INVALID_') ? 2 : 1;
    }
    process.stderr.write(`gpucc-sim: unexpected error: ${(error as Error).stack ?? String(error)}\n`);
    return 1;
  }
}
