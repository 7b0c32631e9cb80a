import type { Logger } from '@gpucc/daemon';
import {
  type AdvertisedDeviceRecord,
  advertisedKey,
  type HostRoot,
  messageOf,
  writeAdvertisedDevices,
} from '@gpucc/hal';
import type { DeviceState } from './device-state.js';

/**
 * Mirrors what the plugin advertises, health included, into the hal's record
 * (`run/gpucc/sandbox-device-plugin.json`): the kubelet keeps health in memory only, and
 * `gpucc status` reads it from there. The write is atomic and skipped when nothing changed; a failed
 * one (a read-only host mount) costs a warning once, never the serving.
 */
export class DeviceRecordWriter {
  private warned = false;

  constructor(
    private readonly sysfs: HostRoot,
    private readonly logger: Logger,
  ) {}

  async write(state: DeviceState): Promise<void> {
    const records: Record<string, AdvertisedDeviceRecord> = {};
    for (const [resourceName, devices] of state) {
      for (const [id, device] of devices) {
        records[advertisedKey(resourceName, id)] = {
          resourceName,
          id,
          health: device.health,
          ...(device.reason === undefined ? {} : { reason: device.reason }),
          functions: device.functions.map((f) => f.address),
          deviceNodes: device.deviceNodes,
        };
      }
    }
    try {
      await writeAdvertisedDevices(this.sysfs, records);
      this.warned = false;
    } catch (error) {
      if (this.warned) return;
      this.warned = true;
      this.logger.warn(
        { event: 'device.record-failed', err: error },
        `could not record the advertised devices (gpucc status will not show their health): ${messageOf(error)}`,
      );
    }
  }
}
