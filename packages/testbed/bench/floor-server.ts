// The grpc-js floor for the Allocate benchmark: the same API on a unix socket, answering Allocate
// with a constant and doing nothing else. Started by run.ts as its own process; prints "ready".
import { bindUnix, devicePluginApi } from '@gpucc/hal/kubelet';
import * as grpc from '@grpc/grpc-js';

const socket = process.argv[2]!;
const response = {
  container_responses: [
    {
      envs: {},
      mounts: [],
      devices: [
        { container_path: '/dev/vfio/vfio', host_path: '/dev/vfio/vfio', permissions: 'mrw' },
        { container_path: '/dev/vfio/23', host_path: '/dev/vfio/23', permissions: 'mrw' },
      ],
      annotations: {},
      cdi_devices: [],
    },
  ],
};
const unused = () => {};
const server = new grpc.Server({ 'grpc.enable_channelz': 0 });
server.addService(devicePluginApi().devicePlugin, {
  Allocate: (_call: unknown, callback: grpc.sendUnaryData<unknown>) => callback(null, response),
  GetDevicePluginOptions: unused,
  ListAndWatch: unused,
  GetPreferredAllocation: unused,
  PreStartContainer: unused,
});
await bindUnix(server, socket);
process.stdout.write('ready\n');
process.on('SIGTERM', () => server.forceShutdown());
