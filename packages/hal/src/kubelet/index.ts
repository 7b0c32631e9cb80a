// The kubelet device plugin API v1beta1: `@gpucc/hal/kubelet`. A subpath of its own, so that only the
// binaries that speak gRPC (the device plugin) load HTTP/2 and the codecs.
export { type ApiMethod, checkSocketPath, type DevicePluginApi, devicePluginApi } from './api.js';
export { DEVICE_PLUGIN_PROTO } from './api-proto.js';
export { buildCodecs, type MessageCodec } from './codec.js';
export {
  DEVICE_PLUGIN_API_VERSION,
  DEVICE_PLUGIN_DIR,
  type DeviceHealth,
  HEALTHY,
  KUBELET_CHECKPOINT,
  KUBELET_DIAL_TIMEOUT_MS,
  KUBELET_SOCKET,
  MAX_UNIX_SOCKET_PATH,
  UNHEALTHY,
} from './constants.js';
export { type UnaryCallOptions, unaryCall } from './grpc-client.js';
export { GrpcServer, type ServerStream, type StreamHandler, type UnaryHandler } from './grpc-server.js';
export {
  GRPC_STATUS,
  GrpcCallError,
  type GrpcStatusName,
  MAX_MESSAGE_BYTES,
  statusName,
} from './grpc-wire.js';
export { type ProtoJson, protoToJson } from './proto-json.js';
export type * from './types.js';
