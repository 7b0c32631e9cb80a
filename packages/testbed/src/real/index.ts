export { type ApiResponse, ControlPlane, type ControlPlaneOptions } from './control-plane.js';
export { type ContainerDevices, DeviceManager, type ManagedResource, type ManagerState } from './device-manager.js';
export { kubernetesRelease, RealApiServer, RealKubelet, realPeers } from './peers.js';
export { until } from './wait.js';
