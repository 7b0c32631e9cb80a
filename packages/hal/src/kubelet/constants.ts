/**
 * Constants of the kubelet device plugin API v1beta1 (docs/facts/kubelet-device-plugin.md#constants). Directory and
 * socket paths are host paths relative to the host root, for `HostRoot.resolve`.
 */

/** The only API version the kubelet supports; sent in every RegisterRequest. */
export const DEVICE_PLUGIN_API_VERSION = 'v1beta1';

/** Where the kubelet and every device plugin put their unix sockets. */
export const DEVICE_PLUGIN_DIR = 'var/lib/kubelet/device-plugins';

/** The kubelet's Registration socket, a file name inside DEVICE_PLUGIN_DIR. */
export const KUBELET_SOCKET = 'kubelet.sock';

/** The kubelet's allocation checkpoint in DEVICE_PLUGIN_DIR: never ours to delete. */
export const KUBELET_CHECKPOINT = 'kubelet_internal_checkpoint';

/** The only two health values; anything but exactly `Healthy` counts as unhealthy. */
export const HEALTHY = 'Healthy';
export const UNHEALTHY = 'Unhealthy';
export type DeviceHealth = typeof HEALTHY | typeof UNHEALTHY;

/** The kubelet dials a plugin back for at most this long inside Register. */
export const KUBELET_DIAL_TIMEOUT_MS = 10_000;

/** Linux limit for a unix socket path (sun_path is 108 bytes, NUL included). */
export const MAX_UNIX_SOCKET_PATH = 107;
