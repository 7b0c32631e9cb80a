// Command devicemanager-harness runs the kubelet's own device manager
// (k8s.io/kubernetes/pkg/kubelet/cm/devicemanager, the code a kubelet runs) on a plugin
// directory of our choice, so that tests can put a real device manager in front of a device
// plugin without a whole kubelet.
//
// It is driven by JSON lines on stdin; each request gets exactly one JSON line on stdout:
//
//	{"op":"state"}                     resources, devices, health, NUMA, capacity, checkpoint
//	{"op":"allocate","pod":"p1","container":"c","resource":"nvidia.com/pgpu","count":2}
//	                                   admits a pod's container as the kubelet does and returns
//	                                   what the container gets (device IDs, /dev nodes, CDI names)
//	{"op":"restart"}                   stop, then start a new manager on the same directory:
//	                                   its start removes every socket (as a kubelet restart does)
//	                                   and reads the checkpoint
//	{"op":"stop"}                      stop the manager and exit
//
// Replies are {"ok":true,...} or {"ok":false,"error":"..."}. Logs (klog) go to stderr.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	_ "unsafe" // for go:linkname

	cadvisorapi "github.com/google/cadvisor/info/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/kubelet/cm/containermap"
	"k8s.io/kubernetes/pkg/kubelet/cm/devicemanager"
	"k8s.io/kubernetes/pkg/kubelet/cm/topologymanager"
)

// newManagerImpl is the device manager's constructor that takes the registration socket path
// (the exported NewManagerImpl hard-codes /var/lib/kubelet/device-plugins/kubelet.sock). The
// kubelet's own tests use it the same way; building needs -ldflags=-checklinkname=0.
//
//go:linkname newManagerImpl k8s.io/kubernetes/pkg/kubelet/cm/devicemanager.newManagerImpl
func newManagerImpl(logger klog.Logger, socketPath string, topology []cadvisorapi.Node, topologyAffinityStore topologymanager.Store) (*devicemanager.ManagerImpl, error)

// noAffinity is a topology store with no NUMA preference for any container (the kubelet's
// "none" Topology Manager policy): the device manager then asks the plugin for its preference.
type noAffinity struct{}

func (noAffinity) GetAffinity(string, string) topologymanager.TopologyHint {
	return topologymanager.TopologyHint{}
}
func (noAffinity) GetPolicy() topologymanager.Policy { return topologymanager.NewNonePolicy() }
func (noAffinity) Name() string                      { return "none" }

type request struct {
	Op        string `json:"op"`
	Pod       string `json:"pod"`
	Container string `json:"container"`
	Resource  string `json:"resource"`
	Count     int64  `json:"count"`
}

type device struct {
	ID     string  `json:"id"`
	Health string  `json:"health"`
	NUMA   []int64 `json:"numa"`
}

type resourceState struct {
	Capacity    int64    `json:"capacity"`
	Allocatable int64    `json:"allocatable"`
	Devices     []device `json:"devices"`
}

type harness struct {
	mu       sync.Mutex
	logger   klog.Logger
	dir      string
	numa     []cadvisorapi.Node
	manager  *devicemanager.ManagerImpl
	pods     map[string]*v1.Pod
	starts   int
	lastSeen map[string]map[string]device // every device a resource has listed, for health
}

func (h *harness) socketPath() string { return filepath.Join(h.dir, "kubelet.sock") }

func (h *harness) start() error {
	m, err := newManagerImpl(h.logger, h.socketPath(), h.numa, noAffinity{})
	if err != nil {
		return err
	}
	active := func() []*v1.Pod {
		h.mu.Lock()
		defer h.mu.Unlock()
		out := make([]*v1.Pod, 0, len(h.pods))
		for _, p := range h.pods {
			out = append(out, p)
		}
		return out
	}
	if err := m.Start(h.logger, active, readySources{}, containermap.NewContainerMap(), sets.New[string]()); err != nil {
		return err
	}
	h.manager = m
	h.starts++
	return nil
}

type readySources struct{}

func (readySources) AddSource(string) {}
func (readySources) AllReady() bool   { return true }

func (h *harness) state() map[string]any {
	capacity, allocatable, _ := h.manager.GetCapacity()
	healthy := h.manager.GetAllocatableDevices()
	resources := map[string]*resourceState{}
	for name, q := range capacity {
		a := allocatable[name]
		resources[string(name)] = &resourceState{Capacity: q.Value(), Allocatable: a.Value(), Devices: []device{}}
	}
	// The manager exposes healthy devices with their topology; a device it counts in capacity
	// but not among them is one the plugin listed as unhealthy.
	for name, devs := range healthy {
		if h.lastSeen[name] == nil {
			h.lastSeen[name] = map[string]device{}
		}
		for id, d := range devs {
			numa := []int64{}
			if d.Topology != nil {
				for _, n := range d.Topology.Nodes {
					numa = append(numa, n.ID)
				}
			}
			h.lastSeen[name][id] = device{ID: id, Health: d.Health, NUMA: numa}
		}
	}
	for name, rs := range resources {
		for id, d := range h.lastSeen[name] {
			if _, ok := healthy[name][id]; !ok {
				d.Health = "Unhealthy"
			}
			rs.Devices = append(rs.Devices, d)
		}
		sort.Slice(rs.Devices, func(i, j int) bool { return rs.Devices[i].ID < rs.Devices[j].ID })
	}
	var checkpoint any
	if raw, err := os.ReadFile(filepath.Join(h.dir, "kubelet_internal_checkpoint")); err == nil {
		_ = json.Unmarshal(raw, &checkpoint)
	}
	return map[string]any{"resources": resources, "starts": h.starts, "checkpoint": checkpoint}
}

func (h *harness) allocate(r request) (map[string]any, error) {
	if r.Pod == "" || r.Container == "" || r.Resource == "" || r.Count < 1 {
		return nil, fmt.Errorf("allocate needs pod, container, resource and count >= 1")
	}
	qty := *resource.NewQuantity(r.Count, resource.DecimalSI)
	container := v1.Container{
		Name: r.Container,
		Resources: v1.ResourceRequirements{
			Limits:   v1.ResourceList{v1.ResourceName(r.Resource): qty},
			Requests: v1.ResourceList{v1.ResourceName(r.Resource): qty},
		},
	}
	pod := &v1.Pod{}
	pod.Name, pod.Namespace, pod.UID = r.Pod, "default", types.UID(r.Pod)
	pod.Spec.Containers = []v1.Container{container}
	h.mu.Lock()
	h.pods[r.Pod] = pod
	h.mu.Unlock()
	if err := h.manager.Allocate(pod, &container); err != nil {
		h.mu.Lock()
		delete(h.pods, r.Pod)
		h.mu.Unlock()
		return nil, err
	}
	opts, err := h.manager.GetDeviceRunContainerOptions(context.Background(), pod, &container)
	if err != nil {
		return nil, err
	}
	ids := []string{}
	for _, devs := range h.manager.GetDevices(r.Pod, r.Container) {
		for id := range devs {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	devices := []map[string]string{}
	cdi := []string{}
	envs := map[string]string{}
	mounts := []map[string]any{}
	annotations := map[string]string{}
	if opts != nil {
		for _, d := range opts.Devices {
			devices = append(devices, map[string]string{"hostPath": d.PathOnHost, "containerPath": d.PathInContainer, "permissions": d.Permissions})
		}
		for _, c := range opts.CDIDevices {
			cdi = append(cdi, c.Name)
		}
		for _, e := range opts.Envs {
			envs[e.Name] = e.Value
		}
		for _, m := range opts.Mounts {
			mounts = append(mounts, map[string]any{"hostPath": m.HostPath, "containerPath": m.ContainerPath, "readOnly": m.ReadOnly})
		}
		for _, a := range opts.Annotations {
			annotations[a.Name] = a.Value
		}
	}
	return map[string]any{"deviceIDs": ids, "devices": devices, "cdiDevices": cdi, "envs": envs, "mounts": mounts, "annotations": annotations}, nil
}

func (h *harness) handle(r request) (map[string]any, error) {
	switch r.Op {
	case "state":
		return h.state(), nil
	case "allocate":
		return h.allocate(r)
	case "restart":
		if err := h.manager.Stop(h.logger); err != nil {
			return nil, err
		}
		if err := h.start(); err != nil {
			return nil, err
		}
		return map[string]any{"starts": h.starts}, nil
	case "stop":
		return map[string]any{}, h.manager.Stop(h.logger)
	default:
		return nil, fmt.Errorf("unknown op %q (want state, allocate, restart or stop)", r.Op)
	}
}

func main() {
	klog.InitFlags(nil)
	dir := flag.String("plugin-dir", "", "device plugin directory (the kubelet's /var/lib/kubelet/device-plugins)")
	numaNodes := flag.Int("numa-nodes", 1, "NUMA nodes of the machine the manager believes it runs on")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "devicemanager-harness: --plugin-dir is required")
		os.Exit(2)
	}
	h := &harness{logger: klog.Background(), dir: *dir, pods: map[string]*v1.Pod{}, lastSeen: map[string]map[string]device{}}
	for i := 0; i < *numaNodes; i++ {
		h.numa = append(h.numa, cadvisorapi.Node{Id: i})
	}
	if err := h.start(); err != nil {
		fmt.Fprintf(os.Stderr, "devicemanager-harness: start: %v\n", err)
		os.Exit(1)
	}
	out := json.NewEncoder(os.Stdout)
	_ = out.Encode(map[string]any{"ok": true, "ready": true, "socket": h.socketPath()})

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	lines := make(chan []byte)
	go func() {
		scanner := bufio.NewScanner(os.Stdin)
		scanner.Buffer(make([]byte, 1<<20), 1<<20)
		for scanner.Scan() {
			lines <- append([]byte(nil), scanner.Bytes()...)
		}
		close(lines)
	}()
	for {
		select {
		case <-signals:
			_ = h.manager.Stop(h.logger)
			return
		case line, ok := <-lines:
			if !ok { // stdin closed: the test runner is gone
				_ = h.manager.Stop(h.logger)
				return
			}
			var r request
			var reply map[string]any
			err := json.Unmarshal(line, &r)
			if err == nil {
				reply, err = h.handle(r)
			}
			if err != nil {
				reply = map[string]any{"ok": false, "error": err.Error()}
			} else {
				reply["ok"] = true
			}
			_ = out.Encode(reply)
			if r.Op == "stop" {
				return
			}
		}
	}
}
