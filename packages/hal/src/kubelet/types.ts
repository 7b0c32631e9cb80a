/**
 * The messages of the device plugin API v1beta1 as plain objects, with their wire field names (the
 * proto is loaded with `keepCase`). Received messages have every field (defaults filled in); when
 * sending, unset fields may be left out. `NUMANode.ID` is an int64: it arrives as a string and may be
 * sent as a number.
 */
import type { DeviceHealth } from './constants.js';

export type Empty = Record<string, never>;

export interface DevicePluginOptions {
  pre_start_required: boolean;
  get_preferred_allocation_available: boolean;
}

export interface RegisterRequest {
  version: string;
  /** The socket file name in the device-plugin directory. */
  endpoint: string;
  resource_name: string;
  options?: DevicePluginOptions | null;
}

export interface NUMANode {
  ID: string | number;
}

export interface TopologyInfo {
  nodes: NUMANode[];
}

export interface Device {
  ID: string;
  /** Sent as `Healthy` or `Unhealthy`; a received value is whatever the peer sent. */
  health: DeviceHealth | string;
  topology?: TopologyInfo | null;
}

export interface ListAndWatchResponse {
  devices: Device[];
}

export interface ContainerPreferredAllocationRequest {
  available_deviceIDs: string[];
  must_include_deviceIDs: string[];
  allocation_size: number;
}

export interface PreferredAllocationRequest {
  container_requests: ContainerPreferredAllocationRequest[];
}

export interface ContainerPreferredAllocationResponse {
  deviceIDs: string[];
}

export interface PreferredAllocationResponse {
  container_responses: ContainerPreferredAllocationResponse[];
}

export interface ContainerAllocateRequest {
  devices_ids: string[];
}

export interface AllocateRequest {
  container_requests: ContainerAllocateRequest[];
}

export interface Mount {
  container_path: string;
  host_path: string;
  read_only: boolean;
}

export interface DeviceSpec {
  container_path: string;
  host_path: string;
  /** Some of `r`, `w`, `m`. */
  permissions: string;
}

export interface CDIDevice {
  /** Fully qualified: `vendor/class=name`. */
  name: string;
}

export interface ContainerAllocateResponse {
  envs: Record<string, string>;
  mounts: Mount[];
  devices: DeviceSpec[];
  annotations: Record<string, string>;
  cdi_devices: CDIDevice[];
}

export interface AllocateResponse {
  container_responses: ContainerAllocateResponse[];
}

export interface PreStartContainerRequest {
  devices_ids: string[];
}

export type PreStartContainerResponse = Record<string, never>;
