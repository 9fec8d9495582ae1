package natsbus

import (
	"context"
	"fmt"
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"ntkbus/coordinator"
	"ntkbus/coordinator/optim"
	"ntkbus/model"
	"ntkbus/sampler"
	"ntkbus/sampler/worker"
)

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// node starts one clustered nats-server routed to every route port.
func node(t *testing.T, name string, client, route int, routes []int) *server.Server {
	t.Helper()
	var urls []string
	for _, r := range routes {
		urls = append(urls, fmt.Sprintf("nats-route://127.0.0.1:%d", r))
	}
	opts := &server.Options{
		ServerName: name, Host: "127.0.0.1", Port: client, NoSigs: true, NoLog: true,
		Cluster: server.ClusterOpts{Name: "ntkbus", Host: "127.0.0.1", Port: route},
		Routes:  server.RoutesFromStr(strings.Join(urls, ",")),
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatalf("%s not ready", name)
	}
	return s
}

// waitFor polls cond until it holds or the time is up.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop and restart one node of a 3-node cluster mid-run: the run completes,
// and ends where the fault-free in-process run ends.
func TestClusterNodeRestartMidRun(t *testing.T) {
	ports := freePorts(t, 6)
	client, routes := ports[:3], ports[3:]
	nodes := make([]*server.Server, 3)
	for i := range nodes {
		nodes[i] = node(t, fmt.Sprintf("n%d", i), client[i], routes[i], routes)
	}
	defer func() {
		for _, n := range nodes {
			n.Shutdown()
		}
	}()
	waitFor(t, 10*time.Second, "the cluster to form", func() bool {
		for _, n := range nodes {
			if n.NumRoutes() < 2 {
				return false
			}
		}
		return true
	})
	url := func(first int) string {
		var u []string
		for k := 0; k < 3; k++ {
			u = append(u, fmt.Sprintf("nats://127.0.0.1:%d", client[(first+k)%3]))
		}
		return strings.Join(u, ",")
	}
	connect := func(name string, first int) *nats.Conn {
		nc, err := nats.Connect(url(first), nats.Name(name), nats.DontRandomize(),
			nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	// Six samplers, two on each node, each its own identity as a
	// deployment gives them (on this open server a name; with credentials
	// the server's). Replicas of one identity share its strikes: the two
	// on the stopped node, silent while they hold batches, would exclude
	// all six from the step.
	for i := 0; i < 6; i++ {
		w, err := worker.Start(connect(fmt.Sprintf("sampler-%d", i), i%3), worker.Options{ID: fmt.Sprintf("s%d", i), Identity: fmt.Sprintf("s%d", i), FetchTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.Stop() })
	}

	setup, _ := model.NewSetup(model.Config{Problem: "wave", Layers: smallLayers})
	cfg := coordinator.TrainConfig{
		Steps: 12, Mode: coordinator.Estimated, Alpha: 0.2, InitProbes: 24, StepProbes: 6,
		Probe: sampler.Settings{Seed: 3}, Optimizer: "adam", Schedule: optim.Schedule{LR: 1e-3},
		Resample: true, PointSeed: 2, Counts: smallCounts,
	}
	theta0 := setup.InitTheta(1)
	fused := cfg
	fused.Fused = true
	ref, _ := coordinator.NewTrainer(setup, theta0, fused, nil, model.Options{})
	for i := 0; i < cfg.Steps; i++ {
		if _, err := ref.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
	}

	pts, _ := setup.DrawPoints(2, 0, smallCounts, nil)
	ev, _ := setup.NewEvaluator(pts, model.Options{})
	plan, _ := sampler.NewPlan(cfg.Probe, ev.Layout())
	b, err := New(connect("coordinator", 0), Options{Run: "restart", Setup: setup, Probe: cfg.Probe, Width: plan.Width(), Batch: 2, Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := coordinator.NewTrainer(setup, theta0, cfg, b, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	down := make(chan struct{})
	for i := 0; i < cfg.Steps; i++ {
		switch i {
		case 3:
			// Stop the node while this step's batches are in flight.
			go func() {
				defer close(down)
				time.Sleep(2 * time.Millisecond)
				nodes[1].Shutdown()
				nodes[1].WaitForShutdown()
			}()
		case 7:
			<-down
			nodes[1] = node(t, "n1", client[1], routes[1], routes)
		}
		if _, err := tr.Step(ctx); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	got, want := tr.Theta(), ref.Theta()
	for i := range want {
		if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
			t.Fatalf("θ differs at %d after a node restart", i)
		}
	}
	t.Logf("stats: %+v", b.Stats())
}
