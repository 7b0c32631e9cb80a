import { describe, expect, it } from 'vitest';
import { labelProblems } from '../src/suite/observe.js';
import { formatTimeline, Timeline } from '../src/suite/timeline.js';

const T0 = Date.parse('2026-11-28T00:00:00.000Z');
const line = (ms: number, level: string, event: string, msg: string) =>
  JSON.stringify({ level, time: new Date(T0 + ms).toISOString(), event, msg });

describe('the suite timeline', () => {
  it('keeps what an operator follows from the logs, in time order, and folds a run of per-device events', () => {
    const timeline = new Timeline(T0);
    timeline.add('suite', 'labelled nvidia.com/cc.mode=on', T0 + 500);
    expect(timeline.addLogLine('vfio-manager', line(100, 'info', 'bind.device', 'binding 0000:13:00.0'))).toBeDefined();
    timeline.addLogLine('vfio-manager', line(110, 'info', 'bind.device', 'binding 0000:23:00.0'));
    timeline.addLogLine('kata-manager', line(200, 'info', 'spec.written', 'wrote nvidia.com-pgpu.yaml'));
    timeline.addLogLine('kata-manager', line(210, 'info', 'spec.written', 'wrote nvidia.com-nvswitch.yaml'));
    // Detail, the simulated-host warning every start repeats, and a line that is not JSON stay out.
    expect(timeline.addLogLine('kata-manager', line(220, 'debug', 'spec.unchanged', 'current'))).toBeUndefined();
    expect(timeline.addLogLine('kata-manager', line(230, 'warn', 'host.simulated', 'SIMULATED'))).toBeUndefined();
    expect(timeline.addLogLine('kata-manager', 'node: warning')).toBeUndefined();
    timeline.addLogLine('cc-manager', line(300, 'error', 'reconcile.failed', 'the tool hung'));

    const text = formatTimeline(timeline.entries);
    expect(text.split('\n')).toEqual([
      '   0.10s  vfio-manager           binding 0000:13:00.0 (and 1 more)',
      '   0.20s  kata-manager           wrote nvidia.com-pgpu.yaml',
      '   0.21s  kata-manager           wrote nvidia.com-nvswitch.yaml',
      '   0.30s  cc-manager             ERROR the tool hung',
      '   0.50s  suite                  labelled nvidia.com/cc.mode=on',
    ]);
  });
});

describe('labels that lie or stay stuck', () => {
  it('names a state that is not the mode, a wrong ready state and an operand left paused', () => {
    const good = { 'nvidia.com/cc.mode.state': 'on', 'nvidia.com/cc.ready.state': 'true' };
    expect(labelProblems(good, 'on')).toEqual([]);
    expect(labelProblems({ ...good, 'nvidia.com/cc.ready.state': '' }, 'on')).toEqual([
      'nvidia.com/cc.ready.state=, not true',
    ]);
    expect(
      labelProblems({ ...good, 'nvidia.com/gpu.deploy.sandbox-device-plugin': 'paused-for-cc-mode-change' }, 'on'),
    ).toEqual(['nvidia.com/gpu.deploy.sandbox-device-plugin=paused-for-cc-mode-change left paused']);
    expect(labelProblems(good, 'ppcie')).toEqual(['nvidia.com/cc.mode.state=on, not ppcie']);
  });
});
