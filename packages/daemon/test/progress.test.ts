import { terminalProgress } from '@gpucc/daemon';
import { describe, expect, it } from 'vitest';

function stream(isTTY: boolean) {
  let text = '';
  return {
    isTTY,
    write: (t: string) => {
      text += t;
    },
    text: () => text,
  };
}

describe('terminalProgress', () => {
  it('prints nothing extra when not a terminal', () => {
    expect(terminalProgress(stream(false), 3)).toBeUndefined();
  });

  it('one line per device as it goes, counted, with its time; colour unless NO_COLOR', () => {
    const tty = stream(true);
    const sink = terminalProgress(tty, 3, {})!;
    sink({ device: '0000:13:00.0', what: 'cc on set, reset', ms: 1712, ok: true });
    sink({ device: '0000:23:00.0', what: 'failed: the tool timed out', ok: false });
    expect(tty.text()).toBe(
      '\u001b[32m✓\u001b[0m [1/3] 0000:13:00.0  cc on set, reset  1.71 s\n' +
        '\u001b[31m✗\u001b[0m [2/3] 0000:23:00.0  failed: the tool timed out\n',
    );
    const plain = stream(true);
    terminalProgress(plain, 12, { NO_COLOR: '1' })!({ device: '0000:13:00.0', what: 'verified: cc on', ok: true });
    expect(plain.text()).toBe('✓ [ 1/12] 0000:13:00.0  verified: cc on\n');
  });
});
