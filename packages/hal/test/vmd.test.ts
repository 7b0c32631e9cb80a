import { describe, expect, it } from 'vitest';
import { BEHIND_VMD_REASON, behindVmdError, vmdControllerOf } from '../src/pci/index.js';
import { parsePciAddress } from '../src/types/index.js';

// docs/facts/real-hosts.md#pci-domains-can-be-wider-than-four-digits
describe('Intel VMD domains', () => {
  const nvme = parsePciAddress('10000:01:00.0');

  it('finds the controller whose directory holds the domain root bus', () => {
    expect(vmdControllerOf(nvme, 'sys/devices/pci0000:d7/0000:d7:05.5/pci10000:00/10000:00:02.0/10000:01:00.0')).toBe(
      '0000:d7:05.5',
    );
    // a second VMD controller gets the next domain; its root bus may start at bus 0x80 (bus restrictions)
    expect(
      vmdControllerOf(
        parsePciAddress('10001:81:00.0'),
        'sys/devices/pci0000:85/0000:85:05.5/pci10001:80/10001:80:01.0/10001:81:00.0',
      ),
    ).toBe('0000:85:05.5');
  });

  it('names no controller outside a VMD domain, or where the path does not show one', () => {
    expect(vmdControllerOf(parsePciAddress('0000:43:00.0'), 'sys/devices/pci0000:40/0000:40:01.1/0000:43:00.0')).toBe(
      undefined,
    );
    expect(vmdControllerOf(nvme, `sys/bus/pci/devices/${nvme}`)).toBe(undefined); // a captured, flattened tree
    expect(vmdControllerOf(nvme, 'sys/devices/pci10000:00/10000:00:02.0/10000:01:00.0')).toBe(undefined);
  });

  it('the refusal is coded, gives the reason and a way out, and names the controller when known', () => {
    const known = behindVmdError(nvme, parsePciAddress('0000:d7:05.5'));
    expect(known.code).toBe('ERR_GPUCC_BEHIND_VMD');
    expect(known.message).toBe(
      '10000:01:00.0 sits behind the Intel VMD controller 0000:d7:05.5 and cannot be passed through to a VM: VMD owns its config space and interrupts',
    );
    expect(known.hint).toMatch(/disable VMD .* firmware/);
    expect(known.details).toEqual({ device: nvme, vmdController: '0000:d7:05.5' });
    expect(behindVmdError(nvme).message).toMatch(/behind an Intel VMD controller and cannot/);
    expect(BEHIND_VMD_REASON).toMatch(/Intel VMD/);
  });
});
