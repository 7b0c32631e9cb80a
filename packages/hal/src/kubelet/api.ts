import { GpuccError } from '../errors/index.js';
import { DEVICE_PLUGIN_PROTO } from './api-proto.js';
import { buildCodecs, type MessageCodec } from './codec.js';
import { MAX_UNIX_SOCKET_PATH } from './constants.js';
import { type ProtoJson, type ProtoService, protoInvalid, protoToJson } from './proto-json.js';
import type {
  AllocateRequest,
  AllocateResponse,
  DevicePluginOptions,
  Empty,
  ListAndWatchResponse,
  PreferredAllocationRequest,
  PreferredAllocationResponse,
  PreStartContainerRequest,
  PreStartContainerResponse,
  RegisterRequest,
} from './types.js';

/** One method of the API: its HTTP/2 path, whether it streams, and its messages' codecs. */
export interface ApiMethod<Req, Res> {
  /** `/v1beta1.<Service>/<Method>`, the `:path` of every call. */
  path: string;
  requestStream: boolean;
  responseStream: boolean;
  request: MessageCodec<Req>;
  response: MessageCodec<Res>;
}

/** The two services of the API with typed methods. */
export interface DevicePluginApi {
  registration: {
    Register: ApiMethod<RegisterRequest, Empty>;
  };
  devicePlugin: {
    GetDevicePluginOptions: ApiMethod<Empty, DevicePluginOptions>;
    ListAndWatch: ApiMethod<Empty, ListAndWatchResponse>;
    GetPreferredAllocation: ApiMethod<PreferredAllocationRequest, PreferredAllocationResponse>;
    Allocate: ApiMethod<AllocateRequest, AllocateResponse>;
    PreStartContainer: ApiMethod<PreStartContainerRequest, PreStartContainerResponse>;
  };
}

let api: DevicePluginApi | undefined;

/**
 * The service definitions, built once per process from the embedded .proto text (no file is read),
 * with our own codecs (./codec.ts).
 */
export function devicePluginApi(): DevicePluginApi {
  if (api === undefined) {
    const json = protoToJson(DEVICE_PLUGIN_PROTO);
    const codecs = buildCodecs(json);
    api = {
      registration: service(json, codecs, 'Registration') as DevicePluginApi['registration'],
      devicePlugin: service(json, codecs, 'DevicePlugin') as DevicePluginApi['devicePlugin'],
    };
  }
  return api;
}

function service(
  json: ProtoJson,
  codecs: Map<string, MessageCodec>,
  name: string,
): Record<string, ApiMethod<unknown, unknown>> {
  const [pkg, namespace] = Object.entries(json.nested)[0] ?? [];
  const definition = namespace?.nested[name];
  if (definition === undefined || !('methods' in definition)) {
    throw protoInvalid(` has no service ${name}`, { service: name });
  }
  const codec = (type: string) => {
    const found = codecs.get(type);
    if (found === undefined)
      throw protoInvalid(`: ${name} uses the unknown message ${type}`, { service: name, message: type });
    return found;
  };
  return Object.fromEntries(
    Object.entries((definition as ProtoService).methods).map(([method, m]) => [
      method,
      {
        path: `/${pkg}.${name}/${method}`,
        requestStream: m.requestStream === true,
        responseStream: m.responseStream === true,
        request: codec(m.requestType),
        response: codec(m.responseType),
      },
    ]),
  );
}

/** Refuses a socket path the kernel cannot bind (sun_path holds 107 bytes). */
export function checkSocketPath(absPath: string): string {
  if (!absPath.startsWith('/')) throw socketError(absPath, 'the path is not absolute');
  if (Buffer.byteLength(absPath) > MAX_UNIX_SOCKET_PATH) {
    throw socketError(absPath, `the path is longer than ${MAX_UNIX_SOCKET_PATH} bytes`);
  }
  return absPath;
}

export function socketError(absPath: string, problem: string, cause?: unknown): GpuccError {
  return new GpuccError('ERR_GPUCC_PLUGIN_SOCKET_FAILED', `cannot serve gRPC on ${absPath}: ${problem}`, {
    hint: 'check that the directory exists and is writable, and that the host root is short enough for a unix socket path',
    ...(cause === undefined ? {} : { cause }),
    details: { socket: absPath },
  });
}
