// The transport's floor for the Allocate benchmark: hal's gRPC server on the same unix socket API,
// answering Allocate with a constant and doing nothing else. Started by plugin-vs-go.ts as its own
// process; prints "ready".
import { devicePluginApi, GrpcServer } from '@gpucc/hal/kubelet';

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
const server = new GrpcServer().unary(devicePluginApi().devicePlugin.Allocate, () => response);
await server.listen(socket);
process.stdout.write('ready\n');
process.on('SIGTERM', () => void server.close(0));
