import { errnoOf, GpuccError, isGpuccError } from '../errors/index.js';
import type { HostRoot, WriteOptions } from '../fs/index.js';
import type { PciAddress } from '../types/index.js';

/**
 * Driver binding primitives: each is one sysfs store with the kernel's errno turned into a clear
 * error and, where the kernel's answer is ambiguous (ENODEV, EBUSY), the `driver` link re-read.
 * Sequencing (override → unbind → bind, rollback) belongs to the caller.
 */

const DRIVER_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

export function devicePath(address: PciAddress, attribute?: string): string {
  return `sys/bus/pci/devices/${address}${attribute ? `/${attribute}` : ''}`;
}

export function validateDriverName(name: string): string {
  if (DRIVER_NAME.test(name) && !name.startsWith('.')) return name;
  throw new GpuccError('ERR_GPUCC_INVALID_DRIVER_NAME', `invalid driver name ${JSON.stringify(name)}`, {
    hint: 'a PCI driver name has only letters, digits, _ . and -, e.g. vfio-pci',
    details: { driver: name },
  });
}

/** The driver a device is bound to now, or undefined when unbound. */
export function currentDriver(sysfs: HostRoot, address: PciAddress): string | undefined {
  return sysfs.readlink(devicePath(address, 'driver'))?.split('/').pop();
}

/** The driver_override value, or undefined when unset (`(null)`). */
export function currentOverride(sysfs: HostRoot, address: PciAddress): string | undefined {
  const value = sysfs.readOptional(devicePath(address, 'driver_override'))?.replace(/\n$/, '');
  return value === undefined || value === '(null)' || value === '' ? undefined : value;
}

/**
 * The directory name under `sys/bus/pci/drivers` of a driver, trying the `_`/`-` spellings (module
 * and driver names differ: vfio_pci ↔ vfio-pci). Undefined when the driver is not registered.
 */
export function registeredDriverName(sysfs: HostRoot, name: string): string | undefined {
  validateDriverName(name);
  for (const candidate of new Set([name, name.replaceAll('_', '-'), name.replaceAll('-', '_')])) {
    if (sysfs.kindOf(`sys/bus/pci/drivers/${candidate}`) === 'dir') return candidate;
  }
  return undefined;
}

export function requireDriver(sysfs: HostRoot, name: string): string {
  const found = registeredDriverName(sysfs, name);
  if (found) return found;
  throw new GpuccError('ERR_GPUCC_DRIVER_NOT_LOADED', `PCI driver ${name} is not registered`, {
    hint: `load its module (modprobe ${name.replaceAll('-', '_')}, or --load-modules) and check /sys/bus/pci/drivers`,
    details: { driver: name },
  });
}

export async function setDriverOverride(
  sysfs: HostRoot,
  address: PciAddress,
  driver: string,
  options?: WriteOptions,
): Promise<void> {
  validateDriverName(driver);
  await sysfs.write(devicePath(address, 'driver_override'), driver, options);
}

/**
 * Clears driver_override. Writes "\n": an empty buffer would be a no-op and leave the override set
 * (docs/facts/kernel-sysfs-pci.md#write-rules).
 */
export async function clearDriverOverride(sysfs: HostRoot, address: PciAddress, options?: WriteOptions): Promise<void> {
  await sysfs.write(devicePath(address, 'driver_override'), '\n', options);
}

/**
 * Unbinds a device from its current driver. Returns the driver it left, or undefined when it was not
 * bound. ENODEV (unbound meanwhile) is success; a blocked unbind fails at the deadline.
 */
export async function unbindDevice(
  sysfs: HostRoot,
  address: PciAddress,
  options?: WriteOptions,
): Promise<string | undefined> {
  const driver = currentDriver(sysfs, address);
  if (driver === undefined) return undefined;
  try {
    await sysfs.write(`sys/bus/pci/drivers/${driver}/unbind`, address, options);
  } catch (error) {
    if (errnoOf(error) === 'ENODEV' && currentDriver(sysfs, address) !== driver) return driver;
    throw bindingError('ERR_GPUCC_UNBIND_FAILED', `unbind of ${address} from ${driver} failed`, error, address, driver);
  }
  return driver;
}

/**
 * Binds an unbound device to a registered driver. EBUSY and ENODEV are re-checked against the driver
 * link: already on the target is success (someone else finished the job); anything else fails.
 */
export async function bindDevice(
  sysfs: HostRoot,
  address: PciAddress,
  driver: string,
  options?: WriteOptions,
): Promise<void> {
  const name = requireDriver(sysfs, driver);
  try {
    await sysfs.write(`sys/bus/pci/drivers/${name}/bind`, address, options);
  } catch (error) {
    const errno = errnoOf(error);
    if ((errno === 'EBUSY' || errno === 'ENODEV') && currentDriver(sysfs, address) === name) return;
    const failure = bindingError('ERR_GPUCC_BIND_FAILED', `bind of ${address} to ${name} failed`, error, address, name);
    if (errno === 'ENODEV' && currentOverride(sysfs, address) !== name && sysfs.exists(devicePath(address))) {
      // The kernel's "no match": VFIO drivers match only devices whose driver_override names them.
      throw new GpuccError(failure.code, failure.message, {
        hint: `${name} did not match the device: set driver_override to ${name} before binding`,
        cause: error,
        details: failure.details,
      });
    }
    throw failure;
  }
  const now = currentDriver(sysfs, address);
  if (now !== name) {
    throw new GpuccError(
      'ERR_GPUCC_BIND_FAILED',
      `bind of ${address} to ${name} returned but the device is on ${now ?? 'no driver'}`,
      {
        hint: 'another agent (udev rule, driver module) raced for the device; set driver_override before binding',
        details: { device: address, driver: name, actual: now },
      },
    );
  }
}

/** Asks the kernel to probe an unbound device with normal matching (honours driver_override). */
export async function probeDevice(
  sysfs: HostRoot,
  address: PciAddress,
  options?: WriteOptions,
): Promise<string | undefined> {
  try {
    await sysfs.write('sys/bus/pci/drivers_probe', address, options);
  } catch (error) {
    throw bindingError('ERR_GPUCC_BIND_FAILED', `drivers_probe of ${address} failed`, error, address, undefined);
  }
  return currentDriver(sysfs, address);
}

/** PCI function reset (`reset` ← 1); the driver stays bound. Used to apply a new CC mode. */
export async function resetDevice(sysfs: HostRoot, address: PciAddress, options?: WriteOptions): Promise<void> {
  try {
    await sysfs.write(devicePath(address, 'reset'), '1', options);
  } catch (error) {
    const errno = errnoOf(error);
    const hint =
      errno === 'ENOTTY' || errnoOf(error) === 'ENOENT'
        ? 'the device has no usable reset method (see reset_method); a bus reset or reboot is needed'
        : isGpuccError(error, 'ERR_GPUCC_SYSFS_WRITE_TIMEOUT')
          ? 'the reset did not finish; the device may be held by a VM or hung'
          : 'see the kernel log (dmesg) for the reset failure';
    throw new GpuccError('ERR_GPUCC_RESET_FAILED', `reset of ${address} failed: ${errno ?? (error as Error).message}`, {
      hint,
      cause: error,
      details: { device: address, errno },
    });
  }
}

/** How long a GPU just bound to nvidia may take to get its /proc entry (the driver's probe). */
export const NVIDIA_PROBE_WAIT_MS = 2000;

/**
 * Takes the NVIDIA driver's unbind lock (write 1, read back 1): the driver refuses it while a process
 * holds the GPU. Returns false when not taken; true when taken or when the driver does not offer one
 * (only vGPU-host builds do: docs/facts/real-hosts.md#the-nvidia-unbind-lock).
 * The kernel links a device to its driver before the driver's probe runs, and nvidia's probe makes
 * `/proc/driver/nvidia/gpus/<bdf>`: a GPU seen on nvidia within that window has no lock file yet,
 * and an unbind without the lock would block while the driver initialises it. So while the driver's
 * /proc directory exists but this GPU's entry does not, wait for it (at most `probeWaitMs`).
 */
export async function takeNvidiaUnbindLock(
  sysfs: HostRoot,
  address: PciAddress,
  probeWaitMs = NVIDIA_PROBE_WAIT_MS,
): Promise<boolean> {
  const gpus = 'proc/driver/nvidia/gpus';
  const entry = `${gpus}/${address}`;
  const lock = `${entry}/unbindLock`;
  const deadline = Date.now() + probeWaitMs;
  while (sysfs.exists(gpus) && !sysfs.exists(entry) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  if (!sysfs.exists(lock)) return true;
  await sysfs.write(lock, '1');
  return sysfs.readOptional(lock)?.trim() === '1';
}

// errno → what it means for a bind/unbind and what the user can do (docs/facts/vfio-binding.md#errno-meanings).
const ERRNO_HINTS: Record<string, string> = {
  EBUSY: 'the device is in use or bound to another driver; stop what holds it and retry',
  ENODEV: 'the device vanished, or driver_override names another driver',
  EINVAL: 'the driver refused the device: is the IOMMU on (intel_iommu=on / amd_iommu=on) and is it not a bridge?',
  EAGAIN: 'the probe was deferred; retry shortly',
  ENOENT: 'the driver or device attribute does not exist; is the module loaded?',
};

function bindingError(
  code: 'ERR_GPUCC_BIND_FAILED' | 'ERR_GPUCC_UNBIND_FAILED',
  message: string,
  error: unknown,
  address: PciAddress,
  driver: string | undefined,
): GpuccError {
  if (
    isGpuccError(error) &&
    (error.code === 'ERR_GPUCC_SYSFS_WRITE_TIMEOUT' || error.code === 'ERR_GPUCC_PERMISSION_DENIED')
  ) {
    return new GpuccError(code, `${message}: ${error.message}`, {
      hint: error.hint,
      cause: error,
      details: { device: address, driver, ...error.details },
    });
  }
  const errno = errnoOf(error);
  return new GpuccError(code, `${message}: ${errno ?? (error as Error).message}`, {
    hint: (errno && ERRNO_HINTS[errno]) ?? 'see the kernel log (dmesg)',
    cause: error,
    details: { device: address, driver, errno },
  });
}
