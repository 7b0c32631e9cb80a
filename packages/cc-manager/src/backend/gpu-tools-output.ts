import { GpuccError } from '@gpucc/hal';

/**
 * A tolerant parser for gpu-admin-tools output (docs/facts/cc-tools.md#gpu-admin-tools-output). Layout is tolerant
 * (case, spacing, timestamps, extra warnings); content is strict: a line that is neither a log line
 * nor part of the tool's known printout (header, `Topo:` tree, listing, argparse usage, traceback)
 * fails with ERR_GPUCC_TOOL_OUTPUT_UNRECOGNIZED naming it, and so does a mode value we do not know.
 * A well-formed log line with a message we do not know is kept as a note: tool versions add
 * warnings; what a caller needs (the result line for each device) it checks itself. Pure.
 */

export const CC_MODE_READINGS = ['on', 'off', 'devtools', 'invalid-devtools-only-fix-by-setting-cc-mode'] as const;
export type CcModeReading = (typeof CC_MODE_READINGS)[number];
export type PpcieReading = 'on' | 'off';

export interface DeviceReport {
  kind: 'gpu' | 'nvswitch';
  cc?: CcModeReading;
  ppcie?: PpcieReading;
  /** The tool wrote the knobs (`… mode set to X. It will be active after … reset.`). */
  ccSet?: string;
  ppcieSet?: string;
  /** The tool reset the device and found the new mode active. */
  ccReset: boolean;
  ppcieReset: boolean;
  selected: boolean;
  /** The tool printed the device's PPCIe knobs (`--query-ppcie-settings`: `… PPCIe settings:`). */
  ppcieSettings?: boolean;
  /**
   * The tool refused CC or PPCIe on the device (docs/facts/cc-tools.md#gpu-admin-tools-messages: `Querying CC mode
   * is not supported on …`, `Configuring CC not supported on …`, `… does not support PPCIe on current FW. A FW
   * update is required.`): the device or its firmware lacks it. Holds the tool's message.
   */
  unsupported?: { cc?: string; ppcie?: string };
}

export interface ToolMessage {
  level: string;
  message: string;
  /** The device the message is about, when it names one. */
  device?: string;
}

export interface GpuToolsOutput {
  version?: string;
  devices: Map<string, DeviceReport>;
  /** ERROR/CRITICAL log lines, argparse errors and the exception line of a traceback, in order. */
  errors: ToolMessage[];
  /** Well-formed log lines whose message is not one we know (kept for the debug log). */
  notes: ToolMessage[];
}

const LOG =
  /^(\d{4}-\d{2}-\d{2}),(\d{2}:\d{2}:\d{2}(?:\.\d+)?)\s+(DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL)\s+(.*?)\s*$/i;
const BDF = '[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\\.[0-7]';
// `GPU <bdf> <name> 0x<id> BAR0 0x<bar0>` (NvSwitch likewise), then the rest of the message.
const DEVICE = new RegExp(
  `^(GPU|NvSwitch)\\s+(${BDF})\\s+(\\S+)\\s+(0x[0-9a-fA-F]+)\\s+BAR0\\s+0x[0-9a-fA-F]+\\s*(.*)$`,
  'i',
);
const DEVICE_ANYWHERE = new RegExp(
  `(GPU|NvSwitch)\\s+(${BDF})\\s+\\S+\\s+0x[0-9a-fA-F]+\\s+BAR0\\s+0x[0-9a-fA-F]+`,
  'i',
);

type Section = 'none' | 'topo' | 'listing' | 'usage' | 'traceback';

// The tool's refusals (docs/facts/cc-tools.md#gpu-admin-tools-messages) that name the device at the end (`… not
// supported on <device>`), and what they refuse.
const REFUSED_ON = [
  { pattern: /^(?:Querying CC mode is not supported|Configuring CC not supported) on\s+(.*)$/i, what: 'cc' },
  {
    pattern: /^(?:Querying PPCIe (?:mode|settings) is not supported|Configuring PPCIe not supported) on\s+(.*)$/i,
    what: 'ppcie',
  },
] as const;
// The knob lines under `… PPCIe settings:` (`  enable = 1`): known, nothing to record.
const KNOB_LINE = /^[\w-]+ = \S+$/;

export function unrecognized(
  line: string,
  where: string,
  why = 'a line the gpu-admin-tools parser does not recognise',
): GpuccError {
  return new GpuccError('ERR_GPUCC_TOOL_OUTPUT_UNRECOGNIZED', `${where}: ${why}: ${JSON.stringify(line)}`, {
    hint: 'run the tool by hand with the same arguments; a gpu-admin-tools version with another output format needs a parser update',
    details: { line, where },
  });
}

/**
 * Parses one stream (or both interleaved, as the samples in docs/facts/cc-tools.md are); `where` names it in errors.
 */
export function parseGpuToolsOutput(text: string, where = 'gpu-admin-tools output'): GpuToolsOutput {
  const result: GpuToolsOutput = { devices: new Map(), errors: [], notes: [] };
  let section: Section = 'none';
  for (const [index, raw] of text.replace(/\r\n/g, '\n').split('\n').entries()) {
    section = parseLine(result, raw.replace(/\s+$/, ''), section, `${where}, line ${index + 1}`);
  }
  return result;
}

/** One line in the section it falls in; returns the section the next line is in. */
function parseLine(result: GpuToolsOutput, line: string, section: Section, at: string): Section {
  if (line === '') return section;
  const indented = /^\s/.test(line);
  if (indented && section !== 'none') return section; // topo tree, listing, usage continuation, traceback frames
  if (section === 'traceback' && !indented) {
    result.errors.push({ level: 'EXCEPTION', message: line, ...deviceIn(line) });
    return 'none';
  }
  const log = LOG.exec(line);
  if (log) {
    logLine(result, log[3]!.toUpperCase(), log[4]!, line, at);
    return 'none';
  }
  if (/^NVIDIA GPU Tools version\s+\S+/i.test(line)) {
    result.version = line.split(/\s+/).pop();
    return 'none';
  }
  if (/^Command line arguments:\s/.test(line)) return 'none';
  if (/^Topo:$/i.test(line)) return 'topo';
  if (/^(GPUs|Other):$/.test(line)) return 'listing';
  if (/^usage:\s/.test(line)) return 'usage';
  const argparse = /^\S+: error: (.*)$/.exec(line);
  if (argparse) {
    result.errors.push({ level: 'USAGE', message: `usage error: ${argparse[1]}` });
    return 'none';
  }
  if (/^Traceback \(most recent call last\):$/.test(line)) return 'traceback';
  throw unrecognized(line, at);
}

function deviceIn(message: string): { device?: string } {
  const match = DEVICE_ANYWHERE.exec(message);
  return match ? { device: match[2]!.toLowerCase() } : {};
}

/** The per-device messages (after the device string); false when the message is not one of them. */
function deviceMessage(entry: DeviceReport, rest: string, line: string, at: string): boolean {
  const cc = /^CC mode is (\S+)$/i.exec(rest);
  if (cc) {
    const value = cc[1]!.toLowerCase();
    if (!(CC_MODE_READINGS as readonly string[]).includes(value)) {
      throw unrecognized(line, at, `unknown CC mode ${JSON.stringify(cc[1])}`);
    }
    entry.cc = value as CcModeReading;
    return true;
  }
  const ppcie = /^PPCIe mode is (\S+)$/i.exec(rest);
  if (ppcie) {
    const value = ppcie[1]!.toLowerCase();
    if (value !== 'on' && value !== 'off')
      throw unrecognized(line, at, `unknown PPCIe mode ${JSON.stringify(ppcie[1])}`);
    entry.ppcie = value;
    return true;
  }
  const ccSet = /^CC mode set to ([\w-]+)\b/i.exec(rest);
  if (ccSet) {
    entry.ccSet = ccSet[1]!.toLowerCase();
    return true;
  }
  const ppcieSet = /^PPCIe mode set to ([\w-]+)\b/i.exec(rest);
  if (ppcieSet) {
    entry.ppcieSet = ppcieSet[1]!.toLowerCase();
    return true;
  }
  if (/^was reset to apply the new CC mode\.?$/i.test(rest)) {
    entry.ccReset = true;
    return true;
  }
  if (/^was reset to apply the new PPCIe mode\.?$/i.test(rest)) {
    entry.ppcieReset = true;
    return true;
  }
  if (/^PPCIe settings:$/i.test(rest)) {
    entry.ppcieSettings = true;
    return true;
  }
  // Power management and "has mode X" warnings: known, nothing to record.
  return (
    /forced power control to on/i.test(rest) ||
    /^restoring power control to \S+$/i.test(rest) ||
    /^has (CC|PPCIe) mode \S+, some functionality may not work$/i.test(rest)
  );
}

function report(result: GpuToolsOutput, kind: string, bdf: string): DeviceReport {
  const address = bdf.toLowerCase();
  let entry = result.devices.get(address);
  if (!entry) {
    entry = { kind: /nvswitch/i.test(kind) ? 'nvswitch' : 'gpu', ccReset: false, ppcieReset: false, selected: false };
    result.devices.set(address, entry);
  }
  return entry;
}

function logLine(result: GpuToolsOutput, level: string, message: string, line: string, at: string): void {
  const isError = level === 'ERROR' || level === 'CRITICAL';
  const selected = /^Selected\s+(.*)$/i.exec(message);
  if (selected) {
    const d = DEVICE.exec(selected[1]!);
    if (d && d[5] === '') {
      report(result, d[1]!, d[2]!).selected = true;
      return;
    }
  }
  refusal(result, message);
  const d = DEVICE.exec(message);
  if (d && deviceMessage(report(result, d[1]!, d[2]!), d[5]!, line, at)) return;
  if (!isError && KNOB_LINE.test(message)) return;
  if (isError) {
    result.errors.push({ level, message, ...deviceIn(message) });
    return;
  }
  result.notes.push({ level, message, ...deviceIn(message) });
}

/** Records the tool's refusal on its device; the line stays an error too, for the tool's words. */
function refusal(result: GpuToolsOutput, message: string): void {
  for (const { pattern, what } of REFUSED_ON) {
    const m = pattern.exec(message);
    const d = m ? DEVICE.exec(m[1]!) : null;
    if (d && d[5] === '') {
      const entry = report(result, d[1]!, d[2]!);
      entry.unsupported = { ...entry.unsupported, [what]: message };
      return;
    }
  }
  const d = DEVICE.exec(message);
  if (d && /^does not support PPCIe on current FW\b/i.test(d[5]!)) {
    const entry = report(result, d[1]!, d[2]!);
    entry.unsupported = { ...entry.unsupported, ppcie: message };
  }
}

/** The tool's own words for a message: its ERROR lines and exception, joined. */
export function toolWords(output: GpuToolsOutput, device?: string): string {
  const own = output.errors.filter((e) => device === undefined || e.device === undefined || e.device === device);
  return (own.length ? own : output.errors).map((e) => e.message).join('; ');
}
