package natsbus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"ntkbus/coordinator"
	"ntkbus/coordinator/optim"
	"ntkbus/model"
	"ntkbus/protocol"
	"ntkbus/sampler"
	"ntkbus/sampler/worker"
)

// cluster is a real nats-server in this process (the embedded server, with
// its per-run credentials and permissions) with sampler instances on their
// own connections.
type cluster struct {
	t       testing.TB
	emb     *Embedded
	srv     *server.Server
	url     string
	conns   []*nats.Conn
	workers []*worker.Worker

	mu         sync.Mutex
	violations []string // permission violations of the well-behaved connections
}

func newCluster(t testing.TB) *cluster {
	t.Helper()
	emb, err := StartEmbedded(EmbeddedOptions{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, emb: emb, srv: emb.Server, url: emb.URL}
	t.Cleanup(c.close)
	return c
}

// connect opens a connection with the coordinator's credentials.
func (c *cluster) connect(name string) *nats.Conn { return c.connectAs(c.emb.Coordinator, name) }

// connectAs opens a connection with the given credentials.
func (c *cluster) connectAs(cr Credentials, name string, extra ...nats.Option) *nats.Conn {
	c.t.Helper()
	// A well-behaved connection never meets a permission violation (a
	// rogue's options replace this handler).
	noted := nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			c.mu.Lock()
			c.violations = append(c.violations, name+": "+err.Error())
			c.mu.Unlock()
		}
	})
	opts := append([]nats.Option{nats.Name(name), nats.UserInfo(cr.User, cr.Password), nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond), noted}, extra...)
	nc, err := nats.Connect(c.url, opts...)
	if err != nil {
		c.t.Fatal(err)
	}
	c.conns = append(c.conns, nc)
	return nc
}

func (c *cluster) samplers(n int) []*nats.Conn {
	var out []*nats.Conn
	for i := 0; i < n; i++ {
		nc := c.connectAs(c.emb.Sampler, fmt.Sprintf("sampler-%d", i))
		w, err := worker.Start(nc, worker.Options{ID: fmt.Sprintf("s%d", i)})
		if err != nil {
			c.t.Fatal(err)
		}
		c.workers = append(c.workers, w)
		out = append(out, nc)
	}
	return out
}

func (c *cluster) close() {
	c.mu.Lock()
	if len(c.violations) > 0 {
		c.t.Errorf("permission violations on well-behaved connections: %v", c.violations)
	}
	c.mu.Unlock()
	for _, w := range c.workers {
		w.Stop()
	}
	for _, nc := range c.conns {
		nc.Close()
	}
	c.emb.Shutdown()
}

type fixture struct {
	setup  *model.Setup
	points *model.Collocation
	theta  []float64
	r0     []float64
	plan   *sampler.Plan
}

func newFixture(t testing.TB, layers, counts []int, s sampler.Settings) *fixture {
	t.Helper()
	setup, err := model.NewSetup(model.Config{Problem: "wave", Layers: layers})
	if err != nil {
		t.Fatal(err)
	}
	pts, err := setup.DrawPoints(3, 0, counts, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := setup.NewEvaluator(pts, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{setup: setup, points: pts, theta: setup.InitTheta(3)}
	f.r0 = make([]float64, ev.Layout().N)
	ev.Residual(f.theta, f.r0)
	if f.plan, err = sampler.NewPlan(s, ev.Layout()); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) work() *coordinator.Work {
	return &coordinator.Work{ID: 1, PointsID: 1, Step: 2, Theta: f.theta, Points: f.points}
}

func (f *fixture) backend(t testing.TB, nc *nats.Conn, opt Options) *Backend {
	t.Helper()
	opt.Setup, opt.Probe, opt.Width = f.setup, f.plan.Settings, f.plan.Width()
	if opt.Run == "" {
		opt.Run = "test"
	}
	b, err := New(nc, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// estimate draws probes [0, N) through b into a fresh accumulator, calling
// hook after each accepted probe.
func (f *fixture) estimate(t testing.TB, b coordinator.Backend, N int, hook func(j int)) *coordinator.Accumulator {
	t.Helper()
	acc := coordinator.NewAccumulator(f.plan, 2, f.r0, true)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := b.Probes(ctx, f.work(), 0, N, func(j int, d []float64) error {
		if err := acc.Add(j, d); err != nil {
			return err
		}
		if hook != nil {
			hook(j)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if acc.Applied() != N {
		t.Fatalf("%d of %d probes applied", acc.Applied(), N)
	}
	return acc
}

func sameBits(t *testing.T, what string, a, b *coordinator.Accumulator, n int) {
	t.Helper()
	ea, eb := a.Estimate(), b.Estimate()
	if math.Float64bits(ea.Trace) != math.Float64bits(eb.Trace) {
		t.Fatalf("%s: trace %v vs %v", what, ea.Trace, eb.Trace)
	}
	for i := range ea.BlockTraces {
		if math.Float64bits(ea.BlockTraces[i]) != math.Float64bits(eb.BlockTraces[i]) {
			t.Fatalf("%s: block %d trace differs", what, i)
		}
	}
	ka, kb := make([]float64, n*n), make([]float64, n*n)
	a.Kernel(ka, false)
	b.Kernel(kb, false)
	for i := range ka {
		if math.Float64bits(ka[i]) != math.Float64bits(kb[i]) {
			t.Fatalf("%s: K̂ differs at %d", what, i)
		}
	}
}

var smallLayers, smallCounts = []int{2, 16, 16, 1}, []int{10, 10, 4, 4, 4}

// Over NATS, with 1 or 4 samplers, the estimate is the in-process one to the bit.
func TestNATSEqualsInProcess(t *testing.T) {
	f := newFixture(t, smallLayers, smallCounts, sampler.Settings{Seed: 5})
	local, err := coordinator.NewLocal(f.setup, f.points, f.plan.Settings, 2, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const N = 97
	want := f.estimate(t, local, N, nil)
	n := f.plan.Layout().N
	for _, samplers := range []int{1, 4} {
		c := newCluster(t)
		c.samplers(samplers)
		b := f.backend(t, c.connect("coordinator"), Options{Batch: 7})
		discover(t, b, samplers)
		got := f.estimate(t, b, N, nil)
		sameBits(t, fmt.Sprintf("%d samplers", samplers), got, want, n)
		st := b.Stats()
		if st.Results != (N+6)/7 || b.Audit().Total() != 0 || st.Samplers != samplers {
			t.Errorf("%d samplers: stats %+v", samplers, st)
		}
	}
}

// discover makes b see all n samplers before a test depends on it: on a
// loaded machine an instance can miss one discovery round.
func discover(t *testing.T, b *Backend, n int) {
	t.Helper()
	for try := 0; try < 20; try++ {
		if err := b.discover(context.Background(), 500*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if len(b.disc.live) == n {
			return
		}
	}
	t.Fatalf("discovery never saw %d samplers", n)
}

// Samplers decline work while they hold enough, so the queue group's random
// picks still spread the batches: over four steps of 8 batches on 4
// samplers, every sampler takes part, and some offers are declined. How
// evenly one step spreads depends on whether a batch outlasts the offers
// (on a loaded 2-core machine these small batches often do not), so the
// test counts the batches over all the steps.
func TestBatchesSpreadEvenly(t *testing.T) {
	f := newFixture(t, []int{2, 64, 64, 1}, []int{40, 40, 20, 20, 20}, sampler.Settings{Seed: 7})
	c := newCluster(t)
	c.samplers(4)
	b := f.backend(t, c.connect("coordinator"), Options{Batch: 8})
	discover(t, b, 4)
	const steps = 4
	before := make([]int64, 4)
	for i, w := range c.workers {
		before[i] = w.Counts().Accepted
	}
	for step := range steps {
		acc := coordinator.NewAccumulator(f.plan, uint32(step), f.r0, false)
		w := f.work()
		w.ID, w.Step = uint64(step+10), uint32(step)
		if err := b.Probes(context.Background(), w, 0, 64, acc.Add); err != nil {
			t.Fatal(err)
		}
	}
	var total int64
	for i, w := range c.workers {
		got := w.Counts().Accepted - before[i]
		total += got
		if got == 0 {
			t.Errorf("sampler %d took no batch in %d steps", i, steps)
		}
	}
	if total < steps*8 {
		t.Errorf("%d batches accepted, want at least %d", total, steps*8)
	}
	if st := b.Stats(); st.Declined == 0 {
		t.Errorf("no offer was declined: %+v", st)
	}
}

// A sampler that dies holding the first batches of a run (acknowledged,
// never answered): the batches go to a replacement as soon as discovery
// sees the sampler gone, not after the first deadline (an hour here).
func TestStalledFirstBatchResentOnDiscovery(t *testing.T) {
	f := newFixture(t, smallLayers, smallCounts, sampler.Settings{Seed: 8})
	local, _ := coordinator.NewLocal(f.setup, f.points, f.plan.Settings, 1, model.Options{})
	want := f.estimate(t, local, 16, nil)

	c := newCluster(t)
	ghost := c.connectAs(c.emb.Sampler, "ghost")
	held := make(chan struct{}, 64)
	svc, err := micro.AddService(ghost, micro.Config{Name: protocol.ServiceName, Version: "2.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	id := svc.Info().ID
	err = svc.AddEndpoint("probe", micro.HandlerFunc(func(r micro.Request) {
		// Acknowledge, then never answer.
		r.Respond(nil, micro.WithHeaders(micro.Headers{protocol.HeaderStatus: {protocol.StatusAccepted}, protocol.HeaderInstance: {id}}))
		held <- struct{}{}
	}), micro.WithEndpointSubject("ntkbus.work"), micro.WithEndpointQueueGroup("ntkbus-samplers"))
	if err != nil {
		t.Fatal(err)
	}
	b := f.backend(t, c.connect("coordinator"), Options{Batch: 4, Timeout: time.Hour})
	replaced := make(chan struct{})
	go func() {
		defer close(replaced)
		<-held // the ghost holds a batch: it dies, a replacement starts
		ghost.Close()
		c.samplers(1)
	}()
	got := f.estimate(t, b, 16, nil)
	<-replaced
	sameBits(t, "after the holder died", got, want, f.plan.Layout().N)
	if st := b.Stats(); st.Lost == 0 {
		t.Errorf("no batch counted as lost: %+v", st)
	}
}

// Kill a quarter of the samplers mid-step: the step completes and K̂ is the
// fault-free one, to the bit.
func TestKilledSamplersLoseNothing(t *testing.T) {
	f := newFixture(t, smallLayers, smallCounts, sampler.Settings{Seed: 6})
	ref := newCluster(t)
	ref.samplers(2)
	const N = 120
	want := f.estimate(t, f.backend(t, ref.connect("c"), Options{Batch: 5}), N, nil)

	c := newCluster(t)
	conns := c.samplers(8)
	b := f.backend(t, c.connect("coordinator"), Options{Batch: 5, Timeout: 2 * time.Second})
	var once sync.Once
	got := f.estimate(t, b, N, func(j int) {
		if j >= 10 {
			once.Do(func() {
				for _, nc := range conns[:2] { // a quarter of 8
					nc.Close()
				}
			})
		}
	})
	sameBits(t, "after killing 2 of 8 samplers", got, want, f.plan.Layout().N)
	t.Logf("stats after the kill: %+v", b.Stats())
}

// Forged, malformed, truncated, non-finite, other-run, old-step and replayed
// results are all rejected and counted; none is averaged. The server here
// has no permissions at all, so anyone may publish on the results subject:
// the coordinator's checks do not depend on the server's.
func TestBadResultsAreRejected(t *testing.T) {
	f := newFixture(t, smallLayers, smallCounts, sampler.Settings{Seed: 7})
	c := newOpenCluster(t)
	c.samplers(2)
	const N = 40
	want := f.estimate(t, f.backend(t, c.connect("c0"), Options{Run: "clean", Batch: 4}), N, nil)

	b := f.backend(t, c.connect("c1"), Options{Run: "dirty", Batch: 4})
	rogue := c.connect("rogue")
	// A spy keeps a copy of a genuine result to replay.
	var genuine []byte
	var mu sync.Mutex
	spy := c.connect("spy")
	spy.Subscribe(b.opt.Subjects.Results("dirty"), func(m *nats.Msg) {
		mu.Lock()
		if genuine == nil && m.Header.Get("Nats-Service-Error-Code") == "" {
			genuine = append([]byte(nil), m.Data...)
		}
		mu.Unlock()
	})
	spy.Flush()
	width := f.plan.Width()
	var codec protocol.Codec
	good := func(mut func(*protocol.Result)) []byte {
		r := &protocol.Result{Version: protocol.Version, Run: "dirty", Step: 2, Lo: 0, Hi: 4, Sampler: "rogue", Width: width, D: make([]float64, 4*width)}
		for i := range r.D {
			r.D[i] = 1e6
		}
		mut(r)
		return codec.MarshalResult(nil, r)
	}
	var injected bool
	subject := b.opt.Subjects.ResultsFor("dirty", "1") // the token of the first offer
	got := f.estimate(t, b, N, func(j int) {
		if injected || j < 8 {
			return
		}
		injected = true
		var replay []byte
		for end := time.Now().Add(5 * time.Second); replay == nil && time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
			mu.Lock()
			replay = genuine
			mu.Unlock()
		}
		if replay == nil {
			t.Fatal("the spy saw no genuine result to replay")
		}
		full := good(func(*protocol.Result) {})
		for _, msg := range [][]byte{
			[]byte("not msgpack at all"),
			full[:len(full)/2], // truncated
			good(func(r *protocol.Result) { r.D = r.D[:len(r.D)-1] }),          // wrong length
			good(func(r *protocol.Result) { r.D[3] = math.NaN() }),             // non-finite
			good(func(r *protocol.Result) { r.Run = "another" }),               // another run
			good(func(r *protocol.Result) { r.Step = 1 }),                      // an old step
			good(func(r *protocol.Result) { r.Lo, r.Hi = 1, 5; r.D = r.D[:] }), // a range never sent
			good(func(r *protocol.Result) { r.Width = width + 1 }),             // wrong width
			good(func(r *protocol.Result) { r.Seconds = math.NaN() }),          // a compute time that is not a time
			good(func(r *protocol.Result) { r.Seconds = 1e300 }),
			replay, // a replayed genuine result
		} {
			rogue.Publish(subject, msg)
		}
		rogue.Flush()
		time.Sleep(100 * time.Millisecond)
	})
	sameBits(t, "with forged results", got, want, f.plan.Layout().N)
	st := b.Stats()
	for _, r := range []protocol.Reason{protocol.ReasonMalformed, protocol.ReasonLength, protocol.ReasonNonFinite, protocol.ReasonRun, protocol.ReasonStaleStep, protocol.ReasonRange, protocol.ReasonWidth, protocol.ReasonTime, protocol.ReasonDuplicate} {
		if st.Rejected[r] == 0 {
			t.Errorf("no rejection counted for %s: %v", r, st.Rejected)
		}
	}
	if st.Rejected[protocol.ReasonMalformed] < 2 {
		t.Errorf("garbage and a truncated result: %d malformed", st.Rejected[protocol.ReasonMalformed])
	}
	if st.Duplicates == 0 {
		t.Error("the replayed result was not counted as a duplicate")
	}
}

// The wave network's θ (4 MB) reaches samplers through a server with the
// default 1 MB max payload, including a sampler that joins mid-run.
func TestLargeSnapshotOnDefaultPayload(t *testing.T) {
	f := newFixture(t, []int{2, 1000, 500, 1}, []int{3, 3, 2, 2, 2}, sampler.Settings{Seed: 8, Quotient: sampler.Exact})
	if p := f.setup.NumParams(); p < 500000 {
		t.Fatalf("p = %d", p)
	}
	c := newCluster(t)
	if mp := c.srv.GlobalAccount(); mp == nil {
		t.Fatal("no account")
	}
	first := c.samplers(1)
	nc := c.connect("coordinator")
	if nc.MaxPayload() != 1<<20 {
		t.Fatalf("server max payload %d, want the default 1 MB", nc.MaxPayload())
	}
	b := f.backend(t, nc, Options{Batch: 2, Timeout: 2 * time.Second})
	local, _ := coordinator.NewLocal(f.setup, f.points, f.plan.Settings, 1, model.Options{})
	want := f.estimate(t, local, 6, nil)
	joined := false
	got := f.estimate(t, b, 6, func(j int) {
		if !joined {
			// A sampler joins mid-run and the first one leaves: the
			// newcomer must fetch the snapshot to do the rest.
			joined = true
			c.samplers(1)
			first[0].Close()
		}
	})
	sameBits(t, "4 MB snapshot", got, want, f.plan.Layout().N)
	size := len(f.theta) * 8
	if st := b.Stats(); st.ChunkBytes < int64(2*size) {
		t.Errorf("%d chunk bytes served: the joining sampler did not fetch the %d-byte snapshot", st.ChunkBytes, size)
	}
}

// Training over NATS (resampled points drawn by the samplers from the seed)
// is the fused in-process run, to the bit.
func TestTrainingOverNATSEqualsFused(t *testing.T) {
	setup, _ := model.NewSetup(model.Config{Problem: "wave", Layers: smallLayers})
	cfg := coordinator.TrainConfig{
		Steps: 6, Mode: coordinator.Estimated, Alpha: 0.2, InitProbes: 12, StepProbes: 3,
		Probe: sampler.Settings{Seed: 4}, Optimizer: "adam", Schedule: optim.Schedule{LR: 1e-3},
		Resample: true, PointSeed: 9, Counts: smallCounts,
	}
	theta0 := setup.InitTheta(2)
	run := func(b coordinator.Backend, fused bool) []float64 { return trainTheta(t, setup, cfg, theta0, b, fused) }
	want := run(nil, true)
	cl := newCluster(t)
	cl.samplers(3)
	b, err := New(cl.connect("coordinator"), Options{Run: "train", Setup: setup, Probe: cfg.Probe, Width: probeWidth(t, setup, cfg.Probe), Batch: 2})
	if err != nil {
		t.Fatal(err)
	}
	got := run(b, false)
	for i := range want {
		if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
			t.Fatalf("θ after %d steps differs at %d: NATS %v, fused %v", cfg.Steps, i, got[i], want[i])
		}
	}
}

// With the deploy config's users and permissions, samplers (who may only
// answer what they receive) deliver every result at the first offer they
// accept.
func TestWithDeployPermissions(t *testing.T) {
	srv := deployServer(t)
	f := newFixture(t, smallLayers, smallCounts, sampler.Settings{Seed: 9})
	var violations atomic.Int64
	noted := nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			t.Errorf("permission violation: %v", err)
			violations.Add(1)
		}
	})
	for i := 0; i < 2; i++ {
		nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo("sampler", "s"), noted)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		w, err := worker.Start(nc, worker.Options{ID: fmt.Sprintf("s%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
	}
	nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo("coordinator", "c"), noted)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	b := f.backend(t, nc, Options{Batch: 2})
	local, _ := coordinator.NewLocal(f.setup, f.points, f.plan.Settings, 1, model.Options{})
	want := f.estimate(t, local, 40, nil)
	got := f.estimate(t, b, 40, nil)
	sameBits(t, "with permissions", got, want, f.plan.Layout().N)
	// Several discovery rounds: each has its own reply subject, which the
	// samplers may answer once.
	for range 3 {
		discover(t, b, 2)
	}
	nc.Flush()
	if st := b.Stats(); st.Redispatched != 0 || st.Results != 20 || b.Audit().Total() != 0 {
		t.Errorf("stats %+v: every batch should arrive at the first attempt", st)
	}
}

// newOpenCluster is a cluster on a server without users or permissions.
func newOpenCluster(t testing.TB) *cluster {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	c := &cluster{t: t, emb: &Embedded{Server: srv, URL: srv.ClientURL()}, srv: srv, url: srv.ClientURL()}
	t.Cleanup(c.close)
	return c
}

// deployServer starts a nats-server from deploy/nats/nats.conf, with the
// passwords "c" (coordinator) and "s" (sampler).
func deployServer(t *testing.T) *server.Server {
	t.Helper()
	port := freePorts(t, 2)
	t.Setenv("NATS_NAME", "perm")
	t.Setenv("NATS_LISTEN", fmt.Sprintf("127.0.0.1:%d", port[0]))
	t.Setenv("NATS_HTTP", "127.0.0.1:0")
	t.Setenv("NATS_CLUSTER_LISTEN", fmt.Sprintf("127.0.0.1:%d", port[1]))
	t.Setenv("NATS_ROUTES", fmt.Sprintf("[nats-route://route:r@127.0.0.1:%d]", port[1]))
	t.Setenv("NTKBUS_ROUTE_PASSWORD", "r")
	t.Setenv("NTKBUS_COORDINATOR_PASSWORD", "c")
	t.Setenv("NTKBUS_SAMPLER_PASSWORD", "s")
	o, err := server.ProcessConfigFile("../../deploy/nats/nats.conf")
	if err != nil {
		t.Fatal(err)
	}
	o.NoLog, o.NoSigs, o.HTTPPort = true, true, 0
	srv, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(5 * time.Second) {
		t.Fatal("server not ready")
	}
	return srv
}

// trainTheta runs cfg's steps from theta0 on b (nil: the trainer's own
// prober, fused when asked) and returns θ.
func trainTheta(t *testing.T, setup *model.Setup, cfg coordinator.TrainConfig, theta0 []float64, b coordinator.Backend, fused bool) []float64 {
	t.Helper()
	cfg.Fused = fused
	tr, err := coordinator.NewTrainer(setup, theta0, cfg, b, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < cfg.Steps; i++ {
		if _, err := tr.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return tr.Theta()
}

// probeWidth is the values per probe of settings on the small wave
// network's points (point seed 9, smallCounts).
func probeWidth(t *testing.T, setup *model.Setup, settings sampler.Settings) int {
	t.Helper()
	pts, err := setup.DrawPoints(9, 0, smallCounts, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := setup.NewEvaluator(pts, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := sampler.NewPlan(settings, ev.Layout())
	if err != nil {
		t.Fatal(err)
	}
	return plan.Width()
}

// A batch's deadline stays within [1 s, 1 h] whatever the time per probe
// a slow sampler made the backend observe and however large the batch:
// it is clamped before it becomes a Duration, which would overflow.
func TestDeadlineIsClamped(t *testing.T) {
	b := &Backend{opt: Options{Timeout: 10 * time.Second}}
	for _, c := range []struct {
		perProbe float64
		k, try   int
		want     time.Duration
	}{
		{0, 4, 0, 10 * time.Second},
		{0, 4, 2, 40 * time.Second},
		{0, 4, 16, maxDeadline},
		{0.1, 4, 0, time.Duration(4.2 * float64(time.Second))},
		{3600, 400_000, 0, maxDeadline},
		{1000, 2_000_000, 3, maxDeadline},
		{math.MaxFloat64 / 16, 1 << 30, 16, maxDeadline},
	} {
		b.perProbe = c.perProbe
		if got := b.deadline(c.k, c.try); got != c.want {
			t.Errorf("%v s per probe, %d probes, attempt %d: %v, want %v", c.perProbe, c.k, c.try, got, c.want)
		}
	}
	short := &Backend{opt: Options{Timeout: time.Millisecond}}
	if got := short.deadline(1, 0); got != minDeadline {
		t.Errorf("a 1 ms first timeout: %v, want %v", got, minDeadline)
	}
}
