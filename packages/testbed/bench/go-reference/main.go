// Command go-reference-device-plugin is the yardstick that `pnpm bench` holds our
// sandbox-device-plugin against: the smallest honest device plugin we could write in Go on
// grpc-go and the kubelet's own generated API (k8s.io/kubelet deviceplugin/v1beta1), as a Go
// device plugin author would start. It is never shipped and serves no cluster.
//
// What it does, like ours: at start it lists the functions bound to vfio-pci under the host
// root (sys/bus/pci/drivers/vfio-pci), keeps the NVIDIA GPUs (vendor 0x10de, display class),
// names each by its IOMMU group, reads its NUMA node and whether /dev/vfio/<group> exists
// (Healthy or Unhealthy); serves the DevicePlugin service on its own socket in the kubelet's
// plugin directory; registers the resource on kubelet.sock; streams the list on ListAndWatch;
// answers Allocate with the device nodes (/dev/vfio/<group> and /dev/vfio/vfio, "mrw") and
// GetPreferredAllocation with the must-include IDs, then others on the same NUMA node first.
//
// What it does not do that ours does, so its figures are a floor rather than a peer: no health
// watch after start (ours watches /dev/vfio and the vfio-pci driver), no re-registration when
// the kubelet restarts, no NVSwitches, no CC topology check, no CDI names, no /healthz,
// /readyz or /metrics server, no logs, no configuration beyond these flags.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

var pciAddress = regexp.MustCompile(`^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`)

type gpu struct {
	id   string // the IOMMU group, as ours names a VFIO device
	numa int64
}

type plugin struct {
	pluginapi.UnimplementedDevicePluginServer
	root    string
	devices []*pluginapi.Device
	numaOf  map[string]int64
	done    chan struct{}
}

func readTrimmed(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// discover lists the NVIDIA GPUs bound to vfio-pci under root.
func discover(root string) ([]gpu, error) {
	driver := filepath.Join(root, "sys/bus/pci/drivers/vfio-pci")
	entries, err := os.ReadDir(driver)
	if err != nil {
		return nil, err
	}
	var gpus []gpu
	for _, e := range entries {
		if !pciAddress.MatchString(e.Name()) {
			continue
		}
		dev := filepath.Join(root, "sys/bus/pci/devices", e.Name())
		if readTrimmed(filepath.Join(dev, "vendor")) != "0x10de" ||
			!strings.HasPrefix(readTrimmed(filepath.Join(dev, "class")), "0x03") {
			continue
		}
		link, err := os.Readlink(filepath.Join(dev, "iommu_group"))
		if err != nil {
			continue
		}
		numa, err := strconv.ParseInt(readTrimmed(filepath.Join(dev, "numa_node")), 10, 64)
		if err != nil || numa < 0 {
			numa = 0
		}
		gpus = append(gpus, gpu{id: filepath.Base(link), numa: numa})
	}
	sort.Slice(gpus, func(i, j int) bool { return gpus[i].id < gpus[j].id })
	return gpus, nil
}

func newPlugin(root string, gpus []gpu) *plugin {
	p := &plugin{root: root, numaOf: map[string]int64{}, done: make(chan struct{})}
	for _, g := range gpus {
		health := pluginapi.Healthy
		if _, err := os.Stat(filepath.Join(root, "dev/vfio", g.id)); err != nil {
			health = pluginapi.Unhealthy
		}
		p.devices = append(p.devices, &pluginapi.Device{
			ID:       g.id,
			Health:   health,
			Topology: &pluginapi.TopologyInfo{Nodes: []*pluginapi.NUMANode{{ID: g.numa}}},
		})
		p.numaOf[g.id] = g.numa
	}
	return p
}

func (p *plugin) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{GetPreferredAllocationAvailable: true}, nil
}

func (p *plugin) ListAndWatch(_ *pluginapi.Empty, stream grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse]) error {
	if err := stream.Send(&pluginapi.ListAndWatchResponse{Devices: p.devices}); err != nil {
		return err
	}
	select {
	case <-stream.Context().Done():
	case <-p.done:
	}
	return nil
}

func (p *plugin) Allocate(_ context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	resp := &pluginapi.AllocateResponse{}
	for _, c := range req.ContainerRequests {
		if len(c.DevicesIds) == 0 {
			return nil, fmt.Errorf("a container request names no device")
		}
		specs := []*pluginapi.DeviceSpec{{HostPath: "/dev/vfio/vfio", ContainerPath: "/dev/vfio/vfio", Permissions: "mrw"}}
		for _, id := range c.DevicesIds {
			if _, ok := p.numaOf[id]; !ok {
				return nil, fmt.Errorf("unknown device %q", id)
			}
			node := "/dev/vfio/" + id
			specs = append(specs, &pluginapi.DeviceSpec{HostPath: node, ContainerPath: node, Permissions: "mrw"})
		}
		resp.ContainerResponses = append(resp.ContainerResponses, &pluginapi.ContainerAllocateResponse{Devices: specs})
	}
	return resp, nil
}

func (p *plugin) GetPreferredAllocation(_ context.Context, req *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	resp := &pluginapi.PreferredAllocationResponse{}
	for _, c := range req.ContainerRequests {
		chosen := append([]string{}, c.MustIncludeDeviceIDs...)
		taken := map[string]bool{}
		for _, id := range chosen {
			taken[id] = true
		}
		want := int64(-1)
		if len(chosen) > 0 {
			want = p.numaOf[chosen[0]]
		}
		rest := append([]string{}, c.AvailableDeviceIDs...)
		sort.SliceStable(rest, func(i, j int) bool {
			return (p.numaOf[rest[i]] == want) && (p.numaOf[rest[j]] != want)
		})
		for _, id := range rest {
			if int32(len(chosen)) >= c.AllocationSize {
				break
			}
			if !taken[id] {
				chosen = append(chosen, id)
				taken[id] = true
			}
		}
		resp.ContainerResponses = append(resp.ContainerResponses, &pluginapi.ContainerPreferredAllocationResponse{DeviceIDs: chosen})
	}
	return resp, nil
}

func (p *plugin) PreStartContainer(context.Context, *pluginapi.PreStartContainerRequest) (*pluginapi.PreStartContainerResponse, error) {
	return &pluginapi.PreStartContainerResponse{}, nil
}

func register(pluginDir, socketName, resource string) error {
	conn, err := grpc.NewClient("unix://"+filepath.Join(pluginDir, "kubelet.sock"),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{
		Version:      pluginapi.Version,
		Endpoint:     socketName,
		ResourceName: resource,
		Options:      &pluginapi.DevicePluginOptions{GetPreferredAllocationAvailable: true},
	})
	return err
}

func run() error {
	root := flag.String("host-root", "/", "the host's root (sys/, dev/ under it)")
	pluginDir := flag.String("plugin-dir", pluginapi.DevicePluginPath, "the kubelet's device plugin directory (kubelet.sock)")
	resource := flag.String("resource", "nvidia.com/pgpu", "the extended resource to register")
	socketName := flag.String("socket", "go-reference.sock", "this plugin's socket name in --plugin-dir")
	flag.Parse()

	gpus, err := discover(*root)
	if err != nil {
		return err
	}
	p := newPlugin(*root, gpus)
	socket := filepath.Join(*pluginDir, *socketName)
	_ = os.Remove(socket)
	listener, err := net.Listen("unix", socket)
	if err != nil {
		return err
	}
	server := grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(server, p)
	go func() { _ = server.Serve(listener) }()
	if err := register(*pluginDir, *socketName, *resource); err != nil {
		return err
	}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	<-signals
	close(p.done)
	server.Stop()
	_ = os.Remove(socket)
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "go-reference-device-plugin:", err)
		os.Exit(1)
	}
}
