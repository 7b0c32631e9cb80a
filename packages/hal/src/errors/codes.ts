/**
 * The one catalogue of gpucc error codes. Every GpuccError carries one of these codes; docs/errors.md
 * documents each (a test keeps the two in step). A code is stable once released: never rename one.
 */
export const ERROR_CODES = {
  ERR_GPUCC_INVALID_PCI_ADDRESS: 'A PCI address is not of the form dddd:bb:dd.f (lower-case hex).',
  ERR_GPUCC_INVALID_CC_MODE: 'A CC mode is not one of on, off, devtools, ppcie.',
  ERR_GPUCC_INVALID_LABEL_KEY: 'A Kubernetes label key breaks the qualified-name rules.',
  ERR_GPUCC_INVALID_LABEL_VALUE: 'A Kubernetes label value breaks the label-value rules or the allow-list.',
  ERR_GPUCC_INVALID_CDI_NAME: 'A CDI vendor, class or device name breaks the CDI naming rules.',
  ERR_GPUCC_INVALID_RESOURCE_NAME: 'A device-plugin resource name is not valid for both Kubernetes and CDI.',
  ERR_GPUCC_HOST_ROOT_INVALID: 'The host root is not an existing directory.',
  ERR_GPUCC_PATH_ESCAPES_ROOT: 'A path would leave the host root.',
  ERR_GPUCC_SYSFS_READ: 'Reading a host file failed.',
  ERR_GPUCC_SYSFS_WRITE: 'The kernel refused a sysfs write.',
  ERR_GPUCC_SYSFS_WRITE_TIMEOUT: 'A sysfs write did not return within its deadline.',
  ERR_GPUCC_ATTRIBUTE_MISSING: 'A sysfs attribute that must be written does not exist.',
  ERR_GPUCC_MALFORMED_ATTRIBUTE: 'A sysfs attribute holds content the kernel never prints.',
  ERR_GPUCC_PERMISSION_DENIED: 'The process lacks the privilege to read or write a host file.',
  ERR_GPUCC_DEVICE_NOT_FOUND: 'No PCI device with that address exists under the host root.',
  ERR_GPUCC_INVALID_DRIVER_NAME: 'A PCI driver name has characters other than letters, digits, _ . and -.',
  ERR_GPUCC_DRIVER_NOT_LOADED: 'The PCI driver asked for is not registered with the kernel.',
  ERR_GPUCC_BIND_FAILED: 'Binding a device to a driver failed.',
  ERR_GPUCC_UNBIND_FAILED: 'Unbinding a device from its driver failed.',
  ERR_GPUCC_RESET_FAILED: 'A PCI function reset failed.',
  ERR_GPUCC_DEVICE_NODE_TIMEOUT: 'A device node did not appear (or vanish) before the deadline.',
  ERR_GPUCC_MODPROBE_DISABLED: 'A kernel module is missing and loading modules was not allowed.',
  ERR_GPUCC_TOOL_NOT_FOUND: 'An external tool is not installed at the configured path.',
  ERR_GPUCC_TOOL_FAILED: 'An external tool exited non-zero or was killed by a signal.',
  ERR_GPUCC_TOOL_TIMEOUT: 'An external tool did not finish within its timeout and was killed.',
  ERR_GPUCC_PCI_IDS_MALFORMED: 'The pci.ids database could not be parsed.',
  ERR_GPUCC_ATOMIC_WRITE_FAILED: 'Writing a file atomically failed; the previous content was kept.',
  ERR_GPUCC_TARGET_IS_SYMLINK: 'A file to be replaced is a symlink; gpucc never writes through one.',
  ERR_GPUCC_SIM_UNKNOWN_PROFILE: 'No simulated-node profile has that name.',
  ERR_GPUCC_SIM_NOT_SIMULATED: 'The directory is not a simulated node created by gpucc-sim.',
  ERR_GPUCC_SIM_TARGET_NOT_EMPTY: 'gpucc-sim create refuses to write into a non-empty directory.',
  ERR_GPUCC_SIM_INVALID_FAULT: 'A fault to inject names an unknown kind or device.',
  ERR_GPUCC_SIM_STATE_LOCKED: 'The simulated node state stayed locked by another process too long.',
  ERR_GPUCC_USAGE: 'A command line was wrong: unknown option, missing argument or bad value.',
  ERR_GPUCC_INVALID_MODULE_NAME: 'A kernel module name has characters other than letters, digits, _ and -.',
  ERR_GPUCC_INVALID_DEVICE_NUMBER: 'An IOMMU group or VFIO cdev number is missing or not a non-negative integer.',
} as const satisfies Record<`ERR_GPUCC_${string}`, string>;

export type GpuccErrorCode = keyof typeof ERROR_CODES;
