import {
  type CcModeState,
  type CcNodeState,
  type CcSwitching,
  type GpuChip,
  GpuccError,
  gpuChipOf,
  type HostRoot,
  isGpuccError,
  readCcNodeState,
} from '@gpucc/hal';
import { NVSWITCHES_OPT_IN, type PluginDevice, type SkippedDevice } from './inventory.js';

/**
 * Which GPU and NVSwitch sets a confidential VM can boot with, from the node's CC mode as cc-manager
 * last applied it and each GPU's architecture (docs/facts/cc-topology.md#the-rules). Pure, apart from
 * `readNodeCc`, which reads cc-manager's mode record under the host root.
 */

/** `enforce` refuses a set that cannot boot; `warn` logs it and allocates anyway (`--cc-topology`). */
export const TOPOLOGY_POLICIES = ['enforce', 'warn'] as const;
export type TopologyPolicy = (typeof TOPOLOGY_POLICIES)[number];

/** What the plugin knows of the node's CC mode. */
export interface NodeCc {
  /** `unknown`: cc-manager has recorded no mode (not deployed, or not run yet). */
  state: CcModeState | 'unknown';
  switching?: CcSwitching;
  /** Why the record could not be read, when it could not. */
  problem?: string;
}

/** Whether two readings of the record say the same (a rule computed for one holds for the other). */
export function sameNodeCc(a: NodeCc, b: NodeCc): boolean {
  return (
    a.state === b.state &&
    a.problem === b.problem &&
    a.switching?.from === b.switching?.from &&
    a.switching?.to === b.switching?.to &&
    a.switching?.since === b.switching?.since
  );
}

/**
 * cc-manager's record of the mode; an unreadable one counts as no record, with its reason. `read` is
 * how to read it (a `CcNodeStateReader`'s, where it is read at every allocation).
 */
export function readNodeCc(
  sysfs: HostRoot,
  read: () => CcNodeState | undefined = () => readCcNodeState(sysfs),
): NodeCc {
  try {
    const record = read();
    if (record === undefined) return { state: 'unknown' };
    return { state: record.state, ...(record.switching === undefined ? {} : { switching: record.switching }) };
  } catch (error) {
    if (!isGpuccError(error)) throw error;
    return { state: 'unknown', problem: error.message };
  }
}

/**
 * How many devices of a resource one pod may take: `any`, `one`, `one-or-all` (of the node's GPUs),
 * `all` (every device of the resource), `none` (this resource cannot go into a confidential VM in
 * this mode), or `unsettled` (a switch is in progress or failed: nothing is allocated).
 */
export type SetSize = 'any' | 'one' | 'one-or-all' | 'all' | 'none' | 'unsettled';

export interface TopologyRule {
  /** The mode the rule follows (the state cc-manager recorded). */
  state: NodeCc['state'];
  /** The node's GPU architecture(s), as shown: `Hopper`, `Blackwell (gb202)`, `Hopper + Blackwell`. */
  arch: string;
  gpus: SetSize;
  nvswitches: SetSize;
  /** Devices on the node, for messages and the `all` rule. */
  totals: { gpus: number; nvswitches: number };
  /** One line, as `list` shows it: `mode on, Hopper: 1 GPU per pod`. */
  summary: string;
  switching?: CcSwitching;
}

/**
 * The rule in force on a node with these devices (every resource) and this CC state.
 * `hiddenNvswitches`: NVSwitches on the node that are not advertised (no `--nvswitches`).
 */
export function topologyRule(cc: NodeCc, devices: Iterable<PluginDevice>, hiddenNvswitches = 0): TopologyRule {
  const all = [...devices];
  const gpus = all.filter((d) => d.type === 'gpu');
  const totals = { gpus: gpus.length, nvswitches: all.length - gpus.length };
  const chips = uniqueChips(gpus);
  const arch = archName(chips);
  const base = { state: cc.state, arch, totals, ...(cc.switching ? { switching: cc.switching } : {}) };
  if (cc.switching) {
    const sizes = { gpus: 'unsettled', nvswitches: 'unsettled' } as const;
    return {
      ...base,
      ...sizes,
      summary: `switching ${cc.switching.from} → ${cc.switching.to}: no allocation until the mode is applied`,
    };
  }
  if (cc.state === 'failed') {
    return {
      ...base,
      gpus: 'unsettled',
      nvswitches: 'unsettled',
      summary: 'mode failed (cc-manager could not apply the mode): no allocation',
    };
  }
  const sizes = setSizes(cc.state, chips);
  const summary = summaryOf(cc.state, arch, sizes, totals);
  // PPCIe passes the switches with the GPUs: a pod that cannot ask for them gets a VM that cannot boot.
  const warning =
    sizes.nvswitches === 'all' && hiddenNvswitches > 0
      ? `; but ${hiddenNvswitches} NVSwitch(es) are not advertised: run the plugin without --no-nvswitches`
      : '';
  return { ...base, ...sizes, summary: `${summary}${warning}` };
}

/** NVSwitches the inventory left out only because `--nvswitches` is off. */
export function hiddenNvswitches(skipped: readonly SkippedDevice[]): number {
  return skipped.filter((s) => s.type === 'nvswitch' && s.reason === NVSWITCHES_OPT_IN).length;
}

function setSizes(state: NodeCc['state'], chips: GpuChip[]): { gpus: SetSize; nvswitches: SetSize } {
  if (state === 'off' || state === 'unknown') return { gpus: 'any', nvswitches: 'any' };
  const cc = chips.filter((c) => c.arch !== 'pre-hopper');
  if (cc.length === 0) return { gpus: 'any', nvswitches: 'any' }; // no GPU here has a CC mode
  const mixed = new Set(cc.map((c) => `${c.arch}/${c.class}`)).size > 1;
  if (state === 'ppcie') {
    // PPCIe exists on Hopper only; cc-manager refuses it elsewhere, so a recorded ppcie is Hopper's.
    return { gpus: 'all', nvswitches: 'all' };
  }
  // on and devtools: single GPU passthrough; Blackwell data-centre parts also take the whole node.
  if (!mixed && cc[0]!.arch === 'blackwell' && cc[0]!.class === 'datacenter') {
    return { gpus: 'one-or-all', nvswitches: 'none' };
  }
  return { gpus: 'one', nvswitches: 'none' };
}

function summaryOf(
  state: NodeCc['state'],
  arch: string,
  sizes: { gpus: SetSize; nvswitches: SetSize },
  totals: TopologyRule['totals'],
): string {
  if (state === 'unknown') return 'mode unknown (cc-manager has recorded none): any set, not checked';
  const at = arch ? `, ${arch}` : '';
  if (state === 'off') return `mode off${at}: any set (no CC)`;
  if (sizes.gpus === 'any') return `mode ${state}${at}: any set (these GPUs have no CC mode)`;
  return `mode ${state}, ${arch}: ${allowedText(sizes.gpus, sizes.nvswitches, totals)}`;
}

function allowedText(gpus: SetSize, nvswitches: SetSize, totals: TopologyRule['totals']): string {
  switch (gpus) {
    case 'one':
      return '1 GPU per pod';
    case 'one-or-all':
      return `1 GPU per pod, or all ${totals.gpus} in one pod`;
    case 'all':
      return `all ${wholeNode(totals)} in one pod`;
    default:
      return nvswitches === 'none' ? 'no NVSwitch' : 'any set';
  }
}

function wholeNode(totals: TopologyRule['totals']): string {
  return totals.nvswitches > 0 ? `${totals.gpus} GPUs and ${totals.nvswitches} NVSwitches` : `${totals.gpus} GPUs`;
}

function uniqueChips(gpus: PluginDevice[]): GpuChip[] {
  const byChip = new Map<string, GpuChip>();
  for (const d of gpus) {
    const id = Number.parseInt(d.functions[0]?.pciId.split(':')[1] ?? '', 16);
    const chip = gpuChipOf(id);
    byChip.set(chip.chip, chip);
  }
  return [...byChip.values()];
}

function archName(chips: GpuChip[]): string {
  const names = [
    ...new Set(
      chips.map((c) => (c.arch === 'blackwell' && c.class === 'pcie' ? `Blackwell (${c.chip})` : capital(c.arch))),
    ),
  ];
  return names.sort().join(' + ');
}

const capital = (s: string) => (s === 'pre-hopper' ? 'pre-Hopper' : s[0]!.toUpperCase() + s.slice(1));

/** Why a set of `count` devices of a resource cannot boot under the rule; undefined when it can. */
export function topologyRefusal(
  rule: TopologyRule,
  resource: { name: string; type: 'gpu' | 'nvswitch'; total: number },
  count: number,
): GpuccError | undefined {
  const size = resource.type === 'gpu' ? rule.gpus : rule.nvswitches;
  if (size === 'unsettled') return unsettled(rule, resource.name);
  const fits =
    size === 'any' ||
    (size === 'one' && count === 1) ||
    (size === 'one-or-all' && (count === 1 || count === resource.total)) ||
    (size === 'all' && count === resource.total);
  if (fits) return undefined;
  const what = resource.type === 'gpu' ? plural(count, 'GPU') : plural(count, 'NVSwitch');
  const message = `mode ${rule.state} on ${rule.arch} ${allowsText(rule, resource.type)}; ${fixText(rule, resource.type)}`;
  return new GpuccError('ERR_GPUCC_CC_TOPOLOGY_REFUSED', message, {
    hint: `a confidential VM cannot boot with ${what} of ${resource.name} here (docs/facts/cc-topology.md); \`sandbox-device-plugin list\` shows the rule`,
    details: {
      resourceName: resource.name,
      requested: count,
      rule: rule.summary,
      grpcStatus: 'INVALID_ARGUMENT',
    },
  });
}

/** "allows 1 GPU per pod" and its kin, as the refusal's first half. */
function allowsText(rule: TopologyRule, type: 'gpu' | 'nvswitch'): string {
  const { totals } = rule;
  if (rule.gpus === 'all') return `allows only the whole node in one pod: all ${wholeNode(totals)}`;
  if (type === 'nvswitch') return 'allows no NVSwitch in a pod';
  return rule.gpus === 'one' ? 'allows 1 GPU per pod' : `allows 1 GPU per pod, or all ${totals.gpus} in one pod`;
}

/** What the user can do instead, by rule. */
function fixText(rule: TopologyRule, type: 'gpu' | 'nvswitch'): string {
  const whole = `request all ${wholeNode(rule.totals)}`;
  if (rule.gpus === 'all') return `${whole}, or label the node nvidia.com/cc.mode=on for 1 GPU per pod`;
  const ppcie = rule.arch === 'Hopper' ? `, or label the node nvidia.com/cc.mode=ppcie and ${whole}` : '';
  if (type === 'nvswitch') {
    const why = rule.gpus === 'one-or-all' ? ' (NVLink encryption keeps the switches out of the VM)' : '';
    return `request none${why}${ppcie}`;
  }
  if (rule.gpus === 'one-or-all') return `request 1 or ${rule.totals.gpus}`;
  return `request 1${ppcie || ', or use a node in mode off for more'}`;
}

function unsettled(rule: TopologyRule, resourceName: string): GpuccError {
  if (rule.switching) {
    const { from, to, since } = rule.switching;
    return new GpuccError(
      'ERR_GPUCC_CC_MODE_UNSETTLED',
      `cc-manager is switching the node from ${from} to ${to} (since ${since}): no ${resourceName} is allocated under a mode about to change`,
      {
        hint: 'retry once nvidia.com/cc.mode.state shows the new mode (recreate the pod; a Deployment or Job does it by itself)',
        details: { resourceName, from, to, since, grpcStatus: 'UNAVAILABLE' },
      },
    );
  }
  return new GpuccError(
    'ERR_GPUCC_CC_MODE_UNSETTLED',
    `cc-manager's last switch failed (nvidia.com/cc.mode.state=failed): no ${resourceName} is allocated until the node is in one mode`,
    {
      hint: "read cc-manager's Events on the node (kubectl describe node) and fix what they name; cc-manager retries by itself",
      details: { resourceName, grpcStatus: 'FAILED_PRECONDITION' },
    },
  );
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : word.endsWith('h') ? 'es' : 's'}`;
}
