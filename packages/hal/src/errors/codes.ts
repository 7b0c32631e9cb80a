/**
 * The one catalogue of gpucc error codes. Every GpuccError carries one of these codes; docs/errors.md
 * documents each (a test keeps the two in step). A code is stable once released: never rename one.
 */
export const ERROR_CODES = {
  ERR_GPUCC_INVALID_PCI_ADDRESS:
    'A PCI address is not of the form dddd:bb:dd.f (lower-case hex; 5 domain digits from 10000).',
  ERR_GPUCC_INVALID_CC_MODE: 'A CC mode is not one of on, off, devtools, ppcie.',
  ERR_GPUCC_INVALID_LABEL_KEY: 'A Kubernetes label key breaks the qualified-name rules.',
  ERR_GPUCC_INVALID_LABEL_VALUE: 'A Kubernetes label value breaks the label-value rules or the allow-list.',
  ERR_GPUCC_INVALID_CDI_NAME: 'A CDI vendor, class or device name breaks the CDI naming rules.',
  ERR_GPUCC_INVALID_RESOURCE_NAME: 'A device-plugin resource name is not valid for both Kubernetes and CDI.',
  ERR_GPUCC_HOST_ROOT_INVALID: 'The host root is not an existing directory.',
  ERR_GPUCC_SIMULATOR_NOT_ATTACHED: 'The host root is a simulated node, and this binary runs without the simulator.',
  ERR_GPUCC_PATH_ESCAPES_ROOT: 'A path would leave the host root.',
  ERR_GPUCC_SYSFS_READ: 'Reading a host file failed.',
  ERR_GPUCC_SYSFS_WRITE: 'The kernel refused a sysfs write.',
  ERR_GPUCC_SYSFS_WRITE_TIMEOUT: 'A sysfs write did not return within its deadline.',
  ERR_GPUCC_DEVICE_BLOCKED: 'An earlier write to the device is still blocked in the kernel; no new one is started.',
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
  ERR_GPUCC_SIM_INVALID_HOLDER: 'A simulated holder names a device no process could open, or a pid that holds nothing.',
  ERR_GPUCC_SIM_INVALID_FAULT: 'A fault to inject names an unknown kind or device.',
  ERR_GPUCC_SIM_STATE_LOCKED: 'The simulated node state stayed locked by another process too long.',
  ERR_GPUCC_SIM_KERNEL_UNAVAILABLE: 'No simulated kernel process serves the node and none could be started.',
  ERR_GPUCC_IOMMU_OFF: 'The IOMMU is off or a device has no IOMMU group, so VFIO cannot take it.',
  ERR_GPUCC_NOT_A_TARGET:
    'A selected device is not one gpucc may bind (not NVIDIA, a VF, a companion, an opt-in NVSwitch).',
  ERR_GPUCC_BEHIND_VMD:
    'A selected device sits behind an Intel VMD controller (a PCI domain above ffff) and cannot be passed through.',
  ERR_GPUCC_FOREIGN_GROUP_MEMBER: 'An IOMMU group holds a device of another vendor still on a host driver.',
  ERR_GPUCC_SRIOV_ENABLED: 'A physical function has SR-IOV virtual functions enabled and cannot be passed through.',
  ERR_GPUCC_DEVICE_IN_USE: 'A process holds the GPU (found under /proc, or its NVIDIA unbind lock was refused).',
  ERR_GPUCC_STATE_FILE_INVALID: 'A state file exists but cannot be parsed; it is kept and nothing is written.',
  ERR_GPUCC_INTERRUPTED: 'Work was stopped by a shutdown request before it started; nothing of it was written.',
  ERR_GPUCC_PROTO_INVALID: 'The gRPC API definition embedded in the binary could not be parsed (a build defect).',
  ERR_GPUCC_PROTO_MALFORMED: 'A gRPC peer sent bytes that are not a message of the device plugin API; the call failed.',
  ERR_GPUCC_PLUGIN_SOCKET_FAILED: 'The device plugin could not serve gRPC on its unix socket.',
  ERR_GPUCC_KUBELET_REGISTRATION_FAILED:
    'Registering a device plugin with the kubelet failed; it is retried with backoff.',
  ERR_GPUCC_PLUGIN_ALREADY_SERVING:
    'Another live sandbox-device-plugin serves the socket this one would use; it is not taken over.',
  ERR_GPUCC_UNKNOWN_DEVICE_ID: 'An allocation request named a device ID that the device plugin does not serve.',
  ERR_GPUCC_INVALID_ALLOCATION_REQUEST:
    'An allocation request cannot be met: no IDs, an unhealthy device, or a size below its must-include IDs.',
  ERR_GPUCC_CC_TOPOLOGY_REFUSED:
    'An allocation asks for a set of GPUs or NVSwitches that a confidential VM cannot boot with in the node’s CC mode.',
  ERR_GPUCC_CC_MODE_UNSETTLED:
    'No allocation is made while cc-manager is switching the node’s CC mode or its last switch failed.',
  ERR_GPUCC_SIM_KUBELET_UNREACHABLE: 'No fake kubelet answers on the simulated node’s control socket.',
  ERR_GPUCC_SIM_KUBELET_REFUSED: 'The fake kubelet refused a request as the kubelet would.',
  ERR_GPUCC_CDI_SPEC_INVALID:
    'A CDI spec breaks the official schema or a CDI rule the schema does not check; it was not written.',
  ERR_GPUCC_CDI_SPEC_NOT_OURS:
    'A CDI spec file kata-manager would write was written by another tool; it is left alone.',
  ERR_GPUCC_LOCKED: 'Another process holds the host-wide lock for these writes; this one waited and gave up.',
  ERR_GPUCC_LOCK_FAILED: 'The host-wide lock file could not be created.',
  ERR_GPUCC_NFD_FILE_NOT_OURS:
    'The NFD feature file the doctor would write exists and was not written by it; it is left alone.',
  ERR_GPUCC_NFD_FILE_OUTSIDE_FEATURES_DIR:
    'The NFD feature file the doctor would write is not in a features.d directory; nothing was written.',
  ERR_GPUCC_CDI_DEVICE_CONFLICT: 'Another CDI spec in the same directory declares the same device: it is unresolvable.',
  ERR_GPUCC_CDI_NO_DEVICES: 'No VFIO-bound GPU or NVSwitch of the asked kind exists, so there is no CDI spec to give.',
  ERR_GPUCC_TOOL_OUTPUT_UNRECOGNIZED:
    'A tool printed output the parser does not recognise; the offending line is named.',
  ERR_GPUCC_CC_NOT_CAPABLE: 'A device cannot take the CC or PPCIe mode asked for (by its PCI device ID).',
  ERR_GPUCC_CC_BACKEND_CANNOT_SWITCH:
    'The CC backend in use can only read modes (nvidia-smi); switching needs gpu-admin-tools.',
  ERR_GPUCC_CC_QUERY_UNSUPPORTED:
    'The CC backend in use cannot read this device’s mode (nvidia-smi sees only GPUs on the NVIDIA driver).',
  ERR_GPUCC_PPCIE_NOT_RESET:
    'A switch to or from PPCIe stopped before any reset: a device’s knobs could not be set, so no device was reset.',
  ERR_GPUCC_CC_VERIFY_FAILED: 'After its reset a device reports another CC or PPCIe mode than the one that was set.',
  ERR_GPUCC_DEVICE_HELD_BY_HOST_DRIVER:
    'A device is bound to a host driver that uses it, so its CC mode is not changed.',
  ERR_GPUCC_KUBE_CONFIG: 'No usable Kubernetes client configuration: not in a cluster and no kubeconfig, or a bad one.',
  ERR_GPUCC_KUBE_UNAUTHORIZED: 'The Kubernetes API server rejected the credentials (401).',
  ERR_GPUCC_KUBE_FORBIDDEN: 'The Kubernetes API server refused a request for lack of RBAC permission (403).',
  ERR_GPUCC_KUBE_NOT_FOUND: 'The Kubernetes object asked for (this node) does not exist (404).',
  ERR_GPUCC_KUBE_REQUEST_FAILED: 'A Kubernetes API request failed: server error, bad answer or unreachable server.',
  ERR_GPUCC_USAGE: 'A command line was wrong: unknown option, missing argument or bad value.',
  ERR_GPUCC_INVALID_MODULE_NAME: 'A kernel module name has characters other than letters, digits, _ and -.',
  ERR_GPUCC_INVALID_DEVICE_NUMBER: 'An IOMMU group or VFIO cdev number is missing or not a non-negative integer.',
  ERR_GPUCC_VFIO_CDEV_UNAVAILABLE:
    'iommufd was required (--vfio-device-model iommufd) but the host or a device has no VFIO cdev.',
  ERR_GPUCC_DEVICE_ID_CONFLICT: 'Two devices of one resource would get the same device ID (a group and a cdev number).',
  ERR_GPUCC_INVALID_CONFIG: 'A flag or its environment variable holds a value it does not allow.',
  ERR_GPUCC_LISTEN_FAILED: 'The health and metrics server could not listen on its address.',
  ERR_GPUCC_METRIC_INVALID: 'A metric is declared or used against the Prometheus rules (a defect in the binary).',
  ERR_GPUCC_SIM_SUITE_TIMEOUT:
    'A step of the simulated suite did not reach its state in time, or a process it needs exited.',
  ERR_GPUCC_PCI_IDS_UNREADABLE:
    'The pci.ids file given with --pci-ids (GPUCC_PCI_IDS) is missing, not a regular file, or unreadable.',
  ERR_GPUCC_CC_FIRMWARE_UNSUPPORTED:
    'gpu-admin-tools refuses CC or PPCIe on a device whose PCI ID has it: its firmware (VBIOS) lacks the support.',
  ERR_GPUCC_DEVICE_LEFT_VFIO:
    'While its device node was awaited, the device left its VFIO driver (something else unbound it); the node will not come.',
} as const satisfies Record<`ERR_GPUCC_${string}`, string>;

export type GpuccErrorCode = keyof typeof ERROR_CODES;
