package natsbus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"ntkbus/coordinator"
	"ntkbus/coordinator/optim"
	"ntkbus/model"
	"ntkbus/protocol"
	"ntkbus/sampler"
	"ntkbus/sampler/worker"
)

// cluster is a real nats-server in this process (the embedded server, with
// its per-run credentials and permissions) with sampler instances on their
// own connections, each under its own identity s<i>; rogue-<i> are
// identities for the attackers of a test.
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

const clusterSamplers, clusterRogues = 16, 8

func newCluster(t testing.TB) *cluster {
	t.Helper()
	var ids []string
	for i := range clusterSamplers {
		ids = append(ids, fmt.Sprintf("s%d", i))
	}
	for i := range clusterRogues {
		ids = append(ids, fmt.Sprintf("rogue-%d", i))
	}
	emb, err := StartEmbedded(EmbeddedOptions{Listen: "127.0.0.1:0", Samplers: ids})
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, emb: emb, srv: emb.Server, url: emb.URL}
	t.Cleanup(c.close)
	return c
}

// connect opens a connection with the coordinator's credential.
func (c *cluster) connect(name string) *nats.Conn { return c.connectAs(c.emb.Coordinator, name) }

// rogue is the credential of attacker i.
func (c *cluster) rogue(i int) Credential { return c.emb.Samplers[fmt.Sprintf("rogue-%d", i)] }

// connectAs opens a connection with credential cr (none on an open server).
func (c *cluster) connectAs(cr Credential, name string, extra ...nats.Option) *nats.Conn {
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
	opts := []nats.Option{nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond), noted}
	if cr.Public != "" {
		opts = append(opts, cr.Option())
	}
	nc, err := nats.Connect(c.url, append(opts, extra...)...)
	if err != nil {
		c.t.Fatal(err)
	}
	c.conns = append(c.conns, nc)
	return nc
}

// samplers starts n more samplers, each under the next identity s<i>.
func (c *cluster) samplers(n int) []*nats.Conn {
	var out []*nats.Conn
	for i := 0; i < n; i++ {
		k := len(c.workers)
		id := fmt.Sprintf("s%d", k)
		nc := c.connectAs(c.emb.Samplers[id], "sampler-"+id)
		w, err := worker.Start(nc, worker.Options{ID: id, Identity: id})
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

// Over NATS, with 1 or 4 samplers, the estimate is the in-process one to
// the bit, and every batch crossed the bus once: one assignment per result.
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
		got := f.estimate(t, b, N, nil)
		sameBits(t, fmt.Sprintf("%d samplers", samplers), got, want, n)
		st := b.Stats()
		if st.Results != (N+6)/7 || st.Batches != st.Results || b.Audit().Total() != 0 || st.Samplers < 1 || st.Samplers > samplers {
			t.Errorf("%d samplers: stats %+v", samplers, st)
		}
	}
}

// Idle samplers pull, so work spreads without anyone declining anything:
// over four steps on 4 samplers every sampler takes part, each batch goes
// out once (copies of late batches aside), and a sampler asks again only
// when it is idle.
func TestPulledWorkSpreads(t *testing.T) {
	f := newFixture(t, []int{2, 64, 64, 1}, []int{40, 40, 20, 20, 20}, sampler.Settings{Seed: 7})
	c := newCluster(t)
	c.samplers(4)
	b := f.backend(t, c.connect("coordinator"), Options{})
	const steps = 4
	for step := range steps {
		acc := coordinator.NewAccumulator(f.plan, uint32(step), f.r0, false)
		w := f.work()
		w.ID, w.Step = uint64(step+10), uint32(step)
		if err := b.Probes(context.Background(), w, 0, 64, acc.Add); err != nil {
			t.Fatal(err)
		}
		if acc.Applied() != 64 {
			t.Fatalf("step %d: %d probes", step, acc.Applied())
		}
	}
	for i, w := range c.workers {
		if w.Counts().Results == 0 {
			t.Errorf("sampler %d answered no batch in %d steps", i, steps)
		}
	}
	st := b.Stats()
	t.Logf("stats %+v", st)
	if st.Batches != st.Results+st.Copies || st.Redispatched != 0 || st.Silent != 0 {
		t.Errorf("assignments %d for %d results (%d copies), %d given out again: %+v", st.Batches, st.Results, st.Copies, st.Redispatched, st)
	}
}

// A sampler that takes batches and then falls silent (no progress, no
// answer) loses them after --timeout of silence, gets a strike, and the
// batches go to another sampler: the step ends with the fault-free bits.
func TestSilentHolderLosesItsBatch(t *testing.T) {
	f := newFixture(t, smallLayers, smallCounts, sampler.Settings{Seed: 8})
	local, _ := coordinator.NewLocal(f.setup, f.points, f.plan.Settings, 1, model.Options{})
	want := f.estimate(t, local, 16, nil)

	c := newCluster(t)
	ghost := c.connectAs(c.rogue(0), "ghost")
	r := startRogue(t, ghost, "rogue-0", func(*rogue, *protocol.WorkRequest) {}) // takes, never answers
	b := f.backend(t, c.connect("coordinator"), Options{Batch: 4, Timeout: 500 * time.Millisecond})
	replaced := make(chan struct{})
	go func() {
		defer close(replaced)
		for r.Taken.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		c.samplers(1)
	}()
	got := f.estimate(t, b, 16, nil)
	<-replaced
	sameBits(t, "after the holder fell silent", got, want, f.plan.Layout().N)
	if st := b.Stats(); st.Silent == 0 || st.Redispatched == 0 {
		t.Errorf("no holder counted as silent: %+v", st)
	}
}

// A sampler slower than --timeout that says it is at work keeps its batch
// and is never struck: its answer, four timeouts late, is taken.
func TestSlowSamplerKeepsItsBatch(t *testing.T) {
	f := newFixture(t, smallLayers, smallCounts, sampler.Settings{Seed: 18})
	local, _ := coordinator.NewLocal(f.setup, f.points, f.plan.Settings, 1, model.Options{})
	want := f.estimate(t, local, 8, nil)
	c := newCluster(t)
	const timeout = 500 * time.Millisecond
	slow := startRogue(t, c.connectAs(c.rogue(0), "slow"), "rogue-0", honest(t, f, local, func(*rogue, *protocol.WorkRequest) {
		time.Sleep(4 * timeout) // four timeouts of work, reporting progress
	}))
	b := f.backend(t, c.connect("coordinator"), Options{Batch: 8, Timeout: timeout})
	got := f.estimate(t, b, 8, nil)
	sameBits(t, "a slow sampler", got, want, f.plan.Layout().N)
	st := b.Stats()
	if slow.Answers.Load() != 1 || st.Silent != 0 || st.Redispatched != 0 || st.Progress == 0 || b.Audit().Total() != 0 {
		t.Errorf("%d answers; stats %+v", slow.Answers.Load(), st)
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
// has no permissions at all, so anyone may publish on any results subject:
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
		if genuine == nil && m.Header.Get(protocol.HeaderKind) == "" {
			genuine = append([]byte(nil), m.Data...)
		}
		mu.Unlock()
	})
	spy.Flush()
	width := f.plan.Width()
	var codec protocol.Codec
	good := func(mut func(*protocol.Result)) []byte {
		r := &protocol.Result{Version: protocol.Version, Run: "dirty", Step: 2, Lo: 0, Hi: 4, Token: 1, Instance: "rogue", Width: width, D: make([]float64, 4*width)}
		for i := range r.D {
			r.D[i] = 1e6
		}
		mut(r)
		return codec.MarshalResult(nil, r)
	}
	var injected bool
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
		for i, msg := range [][]byte{
			[]byte("not msgpack at all"),
			full[:len(full)/2], // truncated
			good(func(r *protocol.Result) { r.D = r.D[:len(r.D)-1] }),          // wrong length
			good(func(r *protocol.Result) { r.D[3] = math.NaN() }),             // non-finite
			good(func(r *protocol.Result) { r.Run = "another" }),               // another run
			good(func(r *protocol.Result) { r.Step = 1 }),                      // an old step
			good(func(r *protocol.Result) { r.Lo, r.Hi = 1, 5; r.D = r.D[:] }), // a range never given out
			good(func(r *protocol.Result) { r.Width = width + 1 }),             // wrong width
			good(func(r *protocol.Result) { r.Seconds = math.NaN() }),          // a compute time that is not a time
			good(func(r *protocol.Result) { r.Seconds = 1e300 }),
			replay, // a replayed genuine result, by its own sampler and by the rogue
			replay,
		} {
			subject := b.opt.Subjects.ResultsFrom("dirty", "rogue")
			if i == 10 {
				subject = b.opt.Subjects.ResultsFrom("dirty", "s0")
			}
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
	if st.Duplicates < 2 {
		t.Error("the replayed results were not counted as duplicates")
	}
	if a := b.Audit(); a.RefusedFrom["rogue"] < 8 || a.RefusedFrom["s0"] != 0 {
		t.Errorf("refusals by identity %v: the rogue's, none of s0's", a.RefusedFrom)
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
	c := &cluster{t: t, emb: &Embedded{Server: srv, URL: srv.ClientURL(), Samplers: map[string]Credential{}}, srv: srv, url: srv.ClientURL()}
	t.Cleanup(c.close)
	return c
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

// Batch sizes follow the samplers' measured speed, within the max payload,
// and stay sane whatever a slow sampler made the backend measure: nothing
// computed from a rate overflows.
func TestBatchSizeFollowsSpeed(t *testing.T) {
	b := &Backend{opt: Options{Timeout: 10 * time.Second, BatchSeconds: 20}, peers: map[string]*peer{}}
	now := time.Now()
	c := &call{lo: 0, hi: 1000, maxBatch: 1000}
	p := b.peer("s")
	for _, tc := range []struct {
		perProbe float64
		want     int
	}{
		{0, 125},    // unknown speed: an eighth of the call
		{1e-6, 125}, // fast: what is left shared by the 4 replicas seen, halved
		{0.5, 40},   // 20 s of work
		{30, 1},     // slower than a batch's time: one probe
		{math.MaxFloat64, 1},
	} {
		p.perProbe = tc.perProbe
		c.next = 0
		p.replicas = map[string]time.Time{"a": now, "b": now, "c": now, "d": now}
		if got := b.size(c, p, now); got != tc.want {
			t.Errorf("%v s per probe: batch of %d, want %d", tc.perProbe, got, tc.want)
		}
	}
	p.perProbe = 1e-9
	c.next = 900
	if got := b.size(c, p, now); got != 13 {
		t.Errorf("100 probes left for 4 replicas: batch of %d, want 13", got)
	}
	c.maxBatch, c.next = 10, 0
	if got := b.size(c, p, now); got != 10 {
		t.Errorf("max payload of 10 probes: batch of %d", got)
	}
	// A batch is overdue only when every holder runs far behind its speed,
	// and the arithmetic holds at absurd speeds.
	bt := &batch{lo: 0, hi: 10, state: out}
	bt.holders = []*assignment{{p: p, at: now.Add(-time.Minute), live: true}}
	for _, tc := range []struct {
		perProbe float64
		overdue  bool
	}{{0.1, true}, {10, false}, {math.MaxFloat64, false}, {0, true}} {
		p.perProbe = tc.perProbe
		if got := b.overdue(bt, now); got != tc.overdue {
			t.Errorf("%v s per probe, held a minute: overdue %v", tc.perProbe, got)
		}
	}
}
