/**
 * The device plugin API v1beta1 as gpucc's own .proto text, written from the contract in
 * docs/facts/kubelet-device-plugin.md#services and docs/facts/kubelet-device-plugin.md#messages: the same
 * package, services, methods, messages, field names (mixed case included: `ID`, `available_deviceIDs`,
 * `deviceIDs`) and field numbers as the kubelet's api.proto, so every kubelet speaks it. Embedded as text because tsc does not copy .proto
 * files and the single-file bundles must carry it; it is parsed at load time by `protoToJson`.
 */
export const DEVICE_PLUGIN_PROTO = `
syntax = "proto3";

package v1beta1;

// Served by the kubelet on kubelet.sock.
service Registration {
  rpc Register(RegisterRequest) returns (Empty) {}
}

message DevicePluginOptions {
  // The kubelet calls PreStartContainer before each container start.
  bool pre_start_required = 1;
  // The kubelet calls GetPreferredAllocation before Allocate.
  bool get_preferred_allocation_available = 2;
}

message RegisterRequest {
  // Must be "v1beta1".
  string version = 1;
  // The plugin's socket file name in the device-plugin directory, not a path.
  string endpoint = 2;
  // An extended resource name, e.g. nvidia.com/pgpu.
  string resource_name = 3;
  DevicePluginOptions options = 4;
}

message Empty {}

// Served by the plugin on its own socket.
service DevicePlugin {
  rpc GetDevicePluginOptions(Empty) returns (DevicePluginOptions) {}
  // The full device list at once, then again on every change; never ends while the plugin runs.
  rpc ListAndWatch(Empty) returns (stream ListAndWatchResponse) {}
  rpc GetPreferredAllocation(PreferredAllocationRequest) returns (PreferredAllocationResponse) {}
  rpc Allocate(AllocateRequest) returns (AllocateResponse) {}
  rpc PreStartContainer(PreStartContainerRequest) returns (PreStartContainerResponse) {}
}

message ListAndWatchResponse {
  repeated Device devices = 1;
}

message TopologyInfo {
  repeated NUMANode nodes = 1;
}

message NUMANode {
  int64 ID = 1;
}

message Device {
  // At most 63 characters; stable across restarts (the kubelet checkpoints it).
  string ID = 1;
  // Exactly "Healthy" or "Unhealthy".
  string health = 2;
  // Unset: no NUMA preference.
  TopologyInfo topology = 3;
}

message PreStartContainerRequest {
  repeated string devices_ids = 1;
}

message PreStartContainerResponse {}

message PreferredAllocationRequest {
  repeated ContainerPreferredAllocationRequest container_requests = 1;
}

message ContainerPreferredAllocationRequest {
  repeated string available_deviceIDs = 1;
  repeated string must_include_deviceIDs = 2;
  int32 allocation_size = 3;
}

message PreferredAllocationResponse {
  repeated ContainerPreferredAllocationResponse container_responses = 1;
}

message ContainerPreferredAllocationResponse {
  repeated string deviceIDs = 1;
}

message AllocateRequest {
  repeated ContainerAllocateRequest container_requests = 1;
}

message ContainerAllocateRequest {
  repeated string devices_ids = 1;
}

message CDIDevice {
  // A fully qualified CDI device name, vendor/class=name.
  string name = 1;
}

message AllocateResponse {
  repeated ContainerAllocateResponse container_responses = 1;
}

message ContainerAllocateResponse {
  map<string, string> envs = 1;
  repeated Mount mounts = 2;
  repeated DeviceSpec devices = 3;
  map<string, string> annotations = 4;
  repeated CDIDevice cdi_devices = 5;
}

message Mount {
  string container_path = 1;
  string host_path = 2;
  bool read_only = 3;
}

message DeviceSpec {
  string container_path = 1;
  string host_path = 2;
  // Some of r, w, m (cgroup device access).
  string permissions = 3;
}
`;
