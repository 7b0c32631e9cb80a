import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as localFs from '../src/fs/local-fs.js';
import {
  ensureModuleLoaded,
  formatCommandLine,
  type GpuccError,
  HostRoot,
  isModuleLoaded,
  modprobe,
  runTool,
  tailOf,
} from '../src/index.js';

let dir: string;

beforeEach(() => {
  dir = path.join(tmpdir(), `gpucc-tools-${randomUUID()}`);
  localFs.makeDir(dir);
});
afterEach(() => localFs.removeSync(dir));

/** Writes an executable `#!/bin/sh` script and returns its path. */
function script(name: string, body: string, mode = 0o755): string {
  const file = path.join(dir, name);
  localFs.writeFileSync(file, `#!/bin/sh\n${body}\n`, mode);
  return file;
}

async function rejection(promise: Promise<unknown>): Promise<GpuccError> {
  try {
    await promise;
  } catch (error) {
    return error as GpuccError;
  }
  throw new Error('expected a rejection');
}

describe('runTool', () => {
  it('returns stdout, stderr and the exit code of a successful run, output verbatim', async () => {
    const tool = script('ok', 'echo "out line"; echo "err line" >&2; exit 0');
    const result = await runTool({ command: tool, args: [], timeoutMs: 5_000 });
    expect(result).toMatchObject({ stdout: 'out line\n', stderr: 'err line\n', exitCode: 0 });
    expect(result.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('passes arguments verbatim, with no shell in between', async () => {
    const marker = path.join(dir, 'pwned');
    const tool = script('args', `printf '%s\\n' "$@"`);
    const args = ['a b', `x; touch ${marker}`, '$(id)', '*', "it's", '`id`', '|', ''];
    const result = await runTool({ command: tool, args, timeoutMs: 5_000 });
    expect(result.stdout).toBe(`${args.join('\n')}\n`);
    expect(localFs.exists(marker)).toBe(false);
  });

  it('passes env, cwd and input to the tool', async () => {
    const tool = script('env', 'echo "$GPUCC_TEST_VAR"; pwd; cat');
    const result = await runTool({
      command: tool,
      args: [],
      timeoutMs: 5_000,
      env: { GPUCC_TEST_VAR: 'hello' },
      cwd: dir,
      input: 'from stdin',
    });
    expect(result.stdout).toBe(`hello\n${localFs.realPath(dir)}\nfrom stdin`);
  });

  it('gives the tool an empty stdin when there is no input, so a reader does not hang', async () => {
    const tool = script('reader', 'cat; echo done');
    const result = await runTool({ command: tool, args: [], timeoutMs: 10_000 });
    expect(result.stdout).toBe('done\n');
  });

  it('maps a non-zero exit to TOOL_FAILED with the command line, code and stderr tail', async () => {
    const tool = script('fail', 'i=1; while [ $i -le 30 ]; do echo "error line $i" >&2; i=$((i+1)); done; exit 3');
    const error = await rejection(runTool({ command: tool, args: ['--flag', 'two words'], timeoutMs: 5_000 }));
    expect(error.code).toBe('ERR_GPUCC_TOOL_FAILED');
    expect(error.message).toContain(`${tool} --flag 'two words'`);
    expect(error.message).toContain('exited with code 3');
    expect(error.message).toContain('error line 30');
    expect(error.message).toContain('error line 11');
    expect(error.message).not.toContain('error line 10\n');
    expect(error.details).toMatchObject({ exitCode: 3, command: tool, args: ['--flag', 'two words'] });
    expect(String(error.details.stderrTail).split('\n')).toHaveLength(20);
  });

  it('bounds the stderr tail in characters as well as lines', async () => {
    const tool = script('long', 'i=0; while [ $i -lt 5 ]; do printf "%01000d\\n" 0 >&2; i=$((i+1)); done; exit 1');
    const error = await rejection(runTool({ command: tool, args: [], timeoutMs: 5_000 }));
    expect(String(error.details.stderrTail).length).toBeLessThanOrEqual(2_000);
  });

  it('accepts exit codes listed in allowedExitCodes', async () => {
    const tool = script('two', 'echo partial; exit 2');
    const result = await runTool({ command: tool, args: [], timeoutMs: 5_000, allowedExitCodes: [0, 2] });
    expect(result).toMatchObject({ exitCode: 2, stdout: 'partial\n' });
    const error = await rejection(runTool({ command: tool, args: [], timeoutMs: 5_000, allowedExitCodes: [0, 1] }));
    expect(error.code).toBe('ERR_GPUCC_TOOL_FAILED');
  });

  it('maps death by a signal to TOOL_FAILED naming the signal', async () => {
    const tool = script('segv', 'echo "about to crash" >&2; kill -SEGV $$');
    const error = await rejection(runTool({ command: tool, args: [], timeoutMs: 5_000 }));
    expect(error.code).toBe('ERR_GPUCC_TOOL_FAILED');
    expect(error.message).toContain('SIGSEGV');
    expect(error.message).toContain('about to crash');
    expect(error.details.signal).toBe('SIGSEGV');
  });

  it('maps a missing binary to TOOL_NOT_FOUND with the path in the hint', async () => {
    const missing = path.join(dir, 'no-such-tool');
    const error = await rejection(runTool({ command: missing, args: [], timeoutMs: 5_000 }));
    expect(error.code).toBe('ERR_GPUCC_TOOL_NOT_FOUND');
    expect(error.hint).toContain(missing);
    const bare = await rejection(runTool({ command: 'gpucc-no-such-tool-xyz', args: [], timeoutMs: 5_000 }));
    expect(bare.code).toBe('ERR_GPUCC_TOOL_NOT_FOUND');
  });

  it('maps a file that is not executable to TOOL_NOT_FOUND', async () => {
    const tool = script('noexec', 'echo hi', 0o644);
    const error = await rejection(runTool({ command: tool, args: [], timeoutMs: 5_000 }));
    expect(error.code).toBe('ERR_GPUCC_TOOL_NOT_FOUND');
    expect(error.details.errno).toBe('EACCES');
  });

  it('kills a tool that runs past its timeout, including the children of a wrapper script', async () => {
    // `sleep` is a child of the script: killing only the script would leave it holding the pipes for 30 s.
    const tool = script('hang', 'echo "starting" >&2; sleep 30');
    const error = await rejection(runTool({ command: tool, args: [], timeoutMs: 300, killGraceMs: 500 }));
    expect(error.code).toBe('ERR_GPUCC_TOOL_TIMEOUT');
    expect(error.message).toContain('did not finish within 300 ms');
    expect(error.message).toContain('starting');
    expect(error.details).toMatchObject({ timeoutMs: 300, forced: false });
  });

  it('sends SIGKILL after the grace period to a tool that ignores SIGTERM', async () => {
    const tool = script('stubborn', "trap '' TERM; sleep 30");
    const error = await rejection(runTool({ command: tool, args: [], timeoutMs: 200, killGraceMs: 300 }));
    expect(error.code).toBe('ERR_GPUCC_TOOL_TIMEOUT');
    expect(error.message).toContain('SIGKILL');
  });

  it('kills the tool and rejects with the reason when aborted', async () => {
    const tool = script('long-run', 'sleep 30');
    const controller = new AbortController();
    const reason = new Error('shutting down');
    const run = runTool({ command: tool, args: [], timeoutMs: 60_000, signal: controller.signal });
    setTimeout(() => controller.abort(reason), 100);
    await expect(run).rejects.toBe(reason);
  });

  it('refuses to run without a positive timeout', async () => {
    await expect(runTool({ command: '/bin/true', args: [], timeoutMs: 0 })).rejects.toThrow(/timeoutMs/);
  });
});

describe('tailOf and formatCommandLine', () => {
  it('keeps the last lines and drops trailing blank space', () => {
    expect(tailOf('a\nb\nc\n\n', 2)).toBe('b\nc');
    expect(tailOf('x'.repeat(50), 20, 10)).toBe(`…${'x'.repeat(9)}`);
  });

  it('quotes words a shell would split, for display', () => {
    expect(formatCommandLine('/usr/bin/tool', ['--mode', 'on', 'a b', "it's", ''])).toBe(
      `/usr/bin/tool --mode on 'a b' 'it'\\''s' ''`,
    );
  });
});

describe('modprobe and modules', () => {
  function hostRoot(): HostRoot {
    const root = path.join(dir, 'host');
    localFs.makeDir(path.join(root, 'sys/module/vfio_pci'));
    return new HostRoot(root);
  }

  /** A fake modprobe that records its arguments. */
  function fakeModprobe(exitCode = 0): { path: string; log: string } {
    const log = path.join(dir, 'modprobe.log');
    const tool = script(
      'modprobe',
      `printf '%s\\n' "$@" >> ${log}; echo "modprobe: FATAL: Module $1 not found" >&2; exit ${exitCode}`,
    );
    return { path: tool, log };
  }

  it('refuses with MODPROBE_DISABLED when loading modules is not allowed, and runs nothing', async () => {
    const fake = fakeModprobe();
    const error = await rejection(modprobe({ path: fake.path }, 'vfio_pci', { allow: false }));
    expect(error.code).toBe('ERR_GPUCC_MODPROBE_DISABLED');
    expect(error.hint).toContain('--load-modules');
    expect(localFs.exists(fake.log)).toBe(false);
  });

  it('runs `modprobe <module>` when allowed', async () => {
    const fake = fakeModprobe();
    await modprobe({ path: fake.path, timeoutMs: 5_000 }, 'vfio_pci', { allow: true });
    expect(localFs.readText(fake.log)).toBe('vfio_pci\n');
  });

  it('reports a failing modprobe with its stderr', async () => {
    const fake = fakeModprobe(1);
    const error = await rejection(modprobe({ path: fake.path }, 'nosuchmod', { allow: true }));
    expect(error.code).toBe('ERR_GPUCC_TOOL_FAILED');
    expect(error.message).toContain('Module nosuchmod not found');
  });

  it('refuses module names that are not plain names before running anything', async () => {
    const fake = fakeModprobe();
    for (const bad of ['../vfio', 'vfio pci', '-r', '--remove', 'a;b', 'vfio\n', '']) {
      const error = await rejection(modprobe({ path: fake.path }, bad, { allow: true }));
      expect(error.code).toBe('ERR_GPUCC_INVALID_MODULE_NAME');
    }
    expect(localFs.exists(fake.log)).toBe(false);
    expect(() => isModuleLoaded(hostRoot(), '../../etc')).toThrow(
      expect.objectContaining({ code: 'ERR_GPUCC_INVALID_MODULE_NAME' }),
    );
  });

  it('sees a loaded module under either spelling of its name', () => {
    const sysfs = hostRoot();
    expect(isModuleLoaded(sysfs, 'vfio_pci')).toBe(true);
    expect(isModuleLoaded(sysfs, 'vfio-pci')).toBe(true);
    expect(isModuleLoaded(sysfs, 'nvidia')).toBe(false);
  });

  it('loads a module only when it is missing', async () => {
    const sysfs = hostRoot();
    const fake = fakeModprobe();
    await expect(ensureModuleLoaded(sysfs, 'vfio-pci', { path: fake.path }, { allow: false })).resolves.toBe(
      'already-loaded',
    );
    expect(localFs.exists(fake.log)).toBe(false);
    await expect(ensureModuleLoaded(sysfs, 'nvgrace_gpu_vfio_pci', { path: fake.path }, { allow: true })).resolves.toBe(
      'loaded',
    );
    expect(localFs.readText(fake.log)).toBe('nvgrace_gpu_vfio_pci\n');
  });
});
