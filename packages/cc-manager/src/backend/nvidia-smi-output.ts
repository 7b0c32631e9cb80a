import { unrecognized } from './gpu-tools-output.js';

/**
 * A tolerant parser for `nvidia-smi conf-compute` output (docs/facts/cc-tools.md#nvidia-smi-conf-compute and its
 * samples): the one-line answers (`CC status: ON`) and the `-q` summary block. Case and spacing are free; a line
 * of unknown layout fails with ERR_GPUCC_TOOL_OUTPUT_UNRECOGNIZED naming it; a `-q` row with an
 * unknown key is kept as a note (newer drivers add rows). Pure.
 */

export type OnOff = 'on' | 'off';

export interface ConfComputeOutput {
  ccState?: OnOff;
  devtools?: OnOff;
  environment?: string;
  /** `ready` or `not-ready`. */
  readyState?: string;
  /** `None`, `Protected PCIe`, or another driver's value, as printed. */
  multiGpuMode?: string;
  cpuCaps?: string;
  gpuCaps?: string;
  /** `Failed to …` lines, the driver-not-loaded message, usage errors. */
  errors: string[];
  notes: string[];
}

// The one-line answers: label (as printed, any case) → field.
const ONE_LINE: ReadonlyArray<[RegExp, keyof ConfComputeOutput]> = [
  [/^CC status:\s*(.+)$/i, 'ccState'],
  [/^DevTools Mode:\s*(.+)$/i, 'devtools'],
  [/^CC Environment:\s*(.+)$/i, 'environment'],
  [/^Confidential Compute GPUs Ready state:\s*(.+)$/i, 'readyState'],
  [/^Multi-GPU Mode:\s*(.+)$/i, 'multiGpuMode'],
  [/^CPU CC capabilities:\s*(.+)$/i, 'cpuCaps'],
  [/^GPU CC capabilities:\s*(.+)$/i, 'gpuCaps'],
];

// Rows of the `-q` block, keyed by their label in lower case.
const Q_ROWS: Readonly<Record<string, keyof ConfComputeOutput>> = {
  'cc state': 'ccState',
  'cc status': 'ccState',
  'devtools mode': 'devtools',
  'cc environment': 'environment',
  'multi-gpu mode': 'multiGpuMode',
  'cpu cc capabilities': 'cpuCaps',
  'gpu cc capabilities': 'gpuCaps',
  'cc gpus ready state': 'readyState',
};

const KNOWN_OTHER = [
  /^Confidential Compute Key Rotation Threshold Attacker Advantage:\s*\d+$/i,
  /^(Un)?protected memory size:\s*\d+\s*KiB$/i,
];

const ERROR_LINES = [
  /^Failed to .+/i,
  /^NVIDIA-SMI has failed because .+/i,
  /^No devices were found$/i,
  /^Invalid combination of input arguments\..*/i,
  /^One, and only one, conf-compute command allowed at a time$/i,
];

function set(out: ConfComputeOutput, field: keyof ConfComputeOutput, value: string, line: string, at: string): void {
  const v = value.trim();
  if (field === 'ccState' || field === 'devtools') {
    const lower = v.toLowerCase();
    if (lower !== 'on' && lower !== 'off') throw unrecognized(line, at, `expected ON or OFF`);
    out[field] = lower;
    return;
  }
  if (field === 'readyState') {
    const lower = v.toLowerCase().replace(/\s+/g, '-');
    if (lower !== 'ready' && lower !== 'not-ready') throw unrecognized(line, at, 'expected ready or not-ready');
    out.readyState = lower;
    return;
  }
  (out as unknown as Record<string, string>)[field] = v;
}

export function parseConfCompute(text: string, where = 'nvidia-smi conf-compute output'): ConfComputeOutput {
  const out: ConfComputeOutput = { errors: [], notes: [] };
  let inSummary = false;
  for (const [index, raw] of text.replace(/\r\n/g, '\n').split('\n').entries()) {
    inSummary = parseLine(out, raw.replace(/\s+$/, ''), inSummary, `${where}, line ${index + 1}`);
  }
  return out;
}

/** One line; returns whether the next line is still inside a `-q` summary block. */
function parseLine(out: ConfComputeOutput, line: string, inSummary: boolean, at: string): boolean {
  if (line.trim() === '') return inSummary;
  if (/^=+\s*NVSMI CONF-COMPUTE LOG\s*=+$/i.test(line.trim())) return true;
  if (inSummary && /^\s/.test(line)) {
    const row = /^\s+(.+?)\s*:\s*(.*)$/.exec(line);
    if (!row) throw unrecognized(line, at, 'a conf-compute -q row without "label : value"');
    const field = Q_ROWS[row[1]!.toLowerCase()];
    if (field) set(out, field, row[2]!, line, at);
    else out.notes.push(line.trim());
    return true;
  }
  for (const [pattern, field] of ONE_LINE) {
    const match = pattern.exec(line);
    if (match) {
      set(out, field, match[1]!, line, at);
      return false;
    }
  }
  if (KNOWN_OTHER.some((p) => p.test(line))) return false;
  if (ERROR_LINES.some((p) => p.test(line))) {
    out.errors.push(line);
    return false;
  }
  throw unrecognized(line, at, 'a line the nvidia-smi conf-compute parser does not recognise');
}
