import type { Logger } from '@gpucc/daemon';
import { type BackoffSettings, backoffDelay } from '@gpucc/daemon/runtime';
import { GpuccError, type HostRoot, isGpuccError, messageOf } from '@gpucc/hal';
import {
  DEVICE_PLUGIN_API_VERSION,
  DEVICE_PLUGIN_DIR,
  type DevicePluginOptions,
  devicePluginApi,
  KUBELET_SOCKET,
  unaryCall,
} from '@gpucc/hal/kubelet';

export const KUBELET_SOCKET_PATH = `${DEVICE_PLUGIN_DIR}/${KUBELET_SOCKET}`;

export interface RegistrationSettings {
  /** Deadline of one Register call; the kubelet dials the plugin back inside it (up to 10 s). */
  timeoutMs: number;
  backoff: BackoffSettings;
}

/** Lets retries that wait on a backoff start at once, e.g. when kubelet.sock is created. */
export class Wakeup {
  private readonly waiters = new Set<() => void>();

  wake(): void {
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const resolve of waiters) resolve();
  }

  /** Resolves after `ms`, on `wake()`, or on abort, whichever comes first. */
  wait(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
      this.waiters.add(done);
    });
  }
}

export interface RegisterRequestInput {
  resourceName: string;
  socketName: string;
  options: DevicePluginOptions;
}

/**
 * One Register call on kubelet.sock. The kubelet answers only after it dialled our socket back,
 * read our options and opened ListAndWatch, so success means the kubelet is streaming from us.
 */
export async function registerOnce(
  sysfs: HostRoot,
  input: RegisterRequestInput,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<void> {
  if (sysfs.kindOf(KUBELET_SOCKET_PATH) === undefined) {
    const error = registrationError(
      input.resourceName,
      `${sysfs.display(KUBELET_SOCKET_PATH)} does not exist (the kubelet is not running or restarting)`,
      undefined,
    );
    error.details.kubeletAbsent = true;
    throw error;
  }
  try {
    await unaryCall(
      sysfs.resolve(KUBELET_SOCKET_PATH),
      devicePluginApi().registration.Register,
      {
        version: DEVICE_PLUGIN_API_VERSION,
        endpoint: input.socketName,
        resource_name: input.resourceName,
        // Old kubelets read the options from here, current ones call GetDevicePluginOptions: the same.
        options: input.options,
      },
      { timeoutMs, signal },
    );
  } catch (error) {
    const details = (error as { details?: unknown }).details;
    throw registrationError(
      input.resourceName,
      typeof details === 'string' && details ? details : messageOf(error),
      error,
    );
  }
}

function registrationError(resourceName: string, problem: string, cause: unknown): GpuccError {
  return new GpuccError(
    'ERR_GPUCC_KUBELET_REGISTRATION_FAILED',
    `registering ${resourceName} with the kubelet failed: ${problem}`,
    {
      hint: 'check that the kubelet runs and uses /var/lib/kubelet/device-plugins; the plugin retries with backoff',
      ...(cause === undefined ? {} : { cause }),
      details: { resourceName },
    },
  );
}

export interface RetryOptions {
  attempt: (signal: AbortSignal) => Promise<void>;
  backoff: BackoffSettings;
  signal: AbortSignal;
  wakeup: Wakeup;
  onFailure: (error: unknown, failures: number, retryInMs: number) => void;
}

/**
 * Retries until the attempt succeeds (true) or the signal aborts (false). It never gives up: each
 * failure is reported, then waits its backoff, or less when woken (kubelet.sock created).
 */
export async function retryUntilDone(options: RetryOptions): Promise<boolean> {
  let failures = 0;
  while (!options.signal.aborted) {
    try {
      await options.attempt(options.signal);
      return !options.signal.aborted;
    } catch (error) {
      if (options.signal.aborted) return false;
      failures++;
      const retryInMs = backoffDelay(options.backoff, failures);
      options.onFailure(error, failures, retryInMs);
      await options.wakeup.wait(retryInMs, options.signal);
    }
  }
  return false;
}

/** Logs a failed attempt: the first few and then every tenth as warnings, so a long outage stays visible but quiet. */
export function logRegistrationFailure(logger: Logger, error: unknown, failures: number, retryInMs: number): void {
  // A kubelet that is restarting has no socket for a moment: expected, so info until it lasts.
  const waiting = isGpuccError(error) && error.details.kubeletAbsent === true && failures <= 3;
  const level = waiting ? 'info' : failures <= 3 || failures % 10 === 0 ? 'warn' : 'debug';
  logger[level](
    { event: 'kubelet.register-failed', failures, retryInMs, err: error },
    `registration failed (${failures}×), retrying in ${retryInMs} ms: ${messageOf(error)}`,
  );
}
