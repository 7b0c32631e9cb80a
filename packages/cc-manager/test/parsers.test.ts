import { readFileSync } from 'node:fs';
import path from 'node:path';
import { isGpuccError } from '@gpucc/hal';
import { describe, expect, it } from 'vitest';
import { parseGpuToolsOutput, toolWords } from '../src/backend/gpu-tools-output.js';
import { parseConfCompute } from '../src/backend/nvidia-smi-output.js';

const FIXTURES = path.resolve(import.meta.dirname, '../../sim/fixtures/cc-tools');
const fixture = (name: string) => readFileSync(path.join(FIXTURES, name), 'utf8');

function thrown(fn: () => unknown) {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

describe('gpu-admin-tools output (docs/facts/cc-tools.md#gpu-admin-tools-output)', () => {
  it('the query sample, --query-cc-mode: the CC mode of the device, through the power warnings and the Topo tree', () => {
    const out = parseGpuToolsOutput(fixture('7.7-gpu-tools-query-cc-mode.txt'));
    expect(out.version).toBe('v2025.07.21o');
    expect(out.errors).toEqual([]);
    expect(out.notes).toEqual([]);
    expect(out.devices.get('0000:3a:00.0')).toMatchObject({ kind: 'gpu', cc: 'off', selected: true });
  });

  it('the set-and-reset sample, --set-cc-mode=off --reset-after-cc-mode-switch: knobs written and the reset that applied them', () => {
    const out = parseGpuToolsOutput(fixture('7.8-gpu-tools-set-cc-mode-off-reset.txt'));
    expect(out.version).toBe('v2024.02.14o');
    expect(out.errors).toEqual([]);
    expect(out.devices.get('0000:43:00.0')).toMatchObject({ ccSet: 'off', ccReset: true, selected: true });
    expect(out.devices.get('0000:43:00.0')?.cc).toBeUndefined(); // "has CC mode on" is a warning, not a reading
  });

  it('tolerates layout: case, spacing, CRLF, other timestamps, NvSwitch lines, new warnings', () => {
    const text = [
      'NVIDIA GPU Tools version v2026.06.05',
      '2026-01-02,03:04:05.678 INFO    gpu 0000:13:00.0 H100-SXM 0x2330 BAR0 0xa8000000000 cc mode is DEVTOOLS\r',
      '2026-01-02,03:04:05.679 INFO  NvSwitch 0000:07:00.0 NVSwitch_gen3 0x22a3 BAR0 0x2c000000000 PPCIe mode is on',
      '2026-01-02,03:04:05.680 WARNING  GPU 0000:13:00.0 H100-SXM 0x2330 BAR0 0xa8000000000 firmware is older than recommended',
      '2026-01-02,03:04:05.681 INFO     GPU 0000:23:00.0 H100 0x2330 BAR0 0xa8000000000 CC mode is invalid-devtools-only-fix-by-setting-cc-mode',
      '',
    ].join('\n');
    const out = parseGpuToolsOutput(text);
    expect(out.devices.get('0000:13:00.0')?.cc).toBe('devtools');
    expect(out.devices.get('0000:07:00.0')).toMatchObject({ kind: 'nvswitch', ppcie: 'on' });
    expect(out.devices.get('0000:23:00.0')?.cc).toBe('invalid-devtools-only-fix-by-setting-cc-mode');
    expect(out.notes.map((n) => n.message)).toEqual([
      'GPU 0000:13:00.0 H100-SXM 0x2330 BAR0 0xa8000000000 firmware is older than recommended',
    ]);
  });

  it('keeps the tool’s words: ERROR lines, argparse errors, the exception line of a traceback', () => {
    const out = parseGpuToolsOutput(
      [
        '2026-01-02,03:04:05.678 ERROR    Configuring CC not supported on GPU 0000:01:00.0 ? 0x1eb1 BAR0 0x0',
        'usage: nvidia_gpu_tools.py [-h] [--devices DEVICES]',
        '                           [--gpu GPU]',
        'nvidia_gpu_tools.py: error: unrecognized arguments: --devices',
        'Traceback (most recent call last):',
        '  File "/opt/gpu-admin-tools/nvidia_gpu_tools.py", line 33, in <module>',
        '    main()',
        'gpu.error.FspRpcError: GPU 0000:13:00.0 H100-SXM 0x2330 BAR0 0xa8000000000 FSP RPC failed, response timeout',
      ].join('\n'),
    );
    expect(out.errors.map((e) => [e.level, e.device])).toEqual([
      ['ERROR', '0000:01:00.0'],
      ['USAGE', undefined],
      ['EXCEPTION', '0000:13:00.0'],
    ]);
    expect(toolWords(out, '0000:13:00.0')).toMatch(
      /usage error: unrecognized arguments: --devices; gpu\.error\.FspRpcError: .*FSP RPC failed/,
    );
  });

  it.each([
    ['%%% gpucc-sim tool-garbage: ¿0x7f? <<>> 3a:00.0 ::: ???', /does not recognise: "%%% gpucc-sim tool-garbage/],
    ['WARN: CC-ish mode maybe:  ON?? (state unknown)', /does not recognise: "WARN: CC-ish mode/],
    [
      '2026-01-02,03:04:05.678 INFO     GPU 0000:13:00.0 H100 0x2330 BAR0 0x1 CC mode is maybe',
      /line 2: unknown CC mode "maybe"/,
    ],
    [
      '2026-01-02,03:04:05.678 INFO     GPU 0000:13:00.0 H100 0x2330 BAR0 0x1 PPCIe mode is half',
      /unknown PPCIe mode "half"/,
    ],
  ])('fails clearly on output it does not know, naming the line: %s', (line, message) => {
    const error = thrown(() => parseGpuToolsOutput(`NVIDIA GPU Tools version v2025.10.20\n${line}\n`, 'stderr'));
    expect(isGpuccError(error, 'ERR_GPUCC_TOOL_OUTPUT_UNRECOGNIZED')).toBe(true);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).toMatch(/^stderr, line 2/);
  });
});

describe('nvidia-smi conf-compute output (docs/facts/cc-tools.md#nvidia-smi-conf-compute)', () => {
  it.each([
    ['7.1-conf-compute-f-on.txt', { ccState: 'on' }],
    ['7.1-conf-compute-f-off.txt', { ccState: 'off' }],
    ['7.2-conf-compute-d.txt', { devtools: 'off' }],
    ['7.3-conf-compute-e.txt', { environment: 'PRODUCTION' }],
    ['7.4-conf-compute-grs-ready.txt', { readyState: 'ready' }],
    ['7.4-conf-compute-grs-not-ready.txt', { readyState: 'not-ready' }],
    [
      '7.5-conf-compute-q-cc-on.txt',
      { ccState: 'on', multiGpuMode: 'None', cpuCaps: 'INTEL TDX', gpuCaps: 'CC Capable', readyState: 'ready' },
    ],
    [
      '7.6-conf-compute-q-ppcie.txt',
      {
        ccState: 'off',
        multiGpuMode: 'Protected PCIe',
        cpuCaps: 'INTEL TDX',
        gpuCaps: 'CC Capable',
        readyState: 'ready',
      },
    ],
  ])('%s', (name, expected) => {
    const out = parseConfCompute(fixture(name));
    expect(out).toMatchObject({ ...expected, errors: [], notes: [] });
  });

  it('keeps failure lines as errors and unknown -q rows as notes; fails on a line of unknown layout', () => {
    const out = parseConfCompute(
      "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.\nFailed to get CC feature: Not Supported\n",
    );
    expect(out.errors).toHaveLength(2);
    const q = parseConfCompute(
      '==============NVSMI CONF-COMPUTE LOG==============\n    CC State : on\n    Protected Memory Size : 4 GiB\n',
    );
    expect(q).toMatchObject({ ccState: 'on', notes: ['Protected Memory Size : 4 GiB'] });
    const error = thrown(() => parseConfCompute('CC status: MAYBE\n'));
    expect((error as Error).message).toMatch(/line 1: expected ON or OFF: "CC status: MAYBE"/);
    expect(
      isGpuccError(
        thrown(() => parseConfCompute('Something new: 1\n')),
        'ERR_GPUCC_TOOL_OUTPUT_UNRECOGNIZED',
      ),
    ).toBe(true);
  });
});
