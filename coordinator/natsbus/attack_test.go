package natsbus

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"

	"ntkbus/coordinator"
	"ntkbus/coordinator/natsbus/attack"
	"ntkbus/coordinator/optim"
	"ntkbus/model"
	"ntkbus/protocol"
	"ntkbus/sampler"
	"ntkbus/sampler/worker"
)

// The attacks of issue 13, each on a real server with the deployment's
// permissions (the embedded server): the run completes with the fault-free
// bits, the samplers and the coordinator survive, and the rejection is
// counted by reason.

// rogue is a hostile sampler (package attack).
type rogue = attack.Client

func startRogue(t testing.TB, nc *nats.Conn, id string, answer attack.Answer) *rogue {
	t.Helper()
	r, err := attack.Start(nc, protocol.Subjects{Prefix: protocol.DefaultPrefix}, id, answer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r
}

var forged = attack.Forged

// honest answers with the true quotients, computed by local at f's points
// (for fixtures whose work is f.work()), after wait, reporting progress
// every beat until it answers.
func honest(t testing.TB, f *fixture, local *coordinator.Local, wait func(*rogue, *protocol.WorkRequest)) attack.Answer {
	return func(r *rogue, wr *protocol.WorkRequest) {
		stop := make(chan struct{})
		beating := make(chan struct{})
		go func() {
			defer close(beating)
			for {
				r.Progress(wr, 0)
				select {
				case <-stop:
					return
				case <-time.After(time.Duration(wr.Beat) * time.Millisecond):
				}
			}
		}()
		defer func() { close(stop); <-beating }()
		w := f.work()
		w.ID, w.Step = uint64(1000+wr.Step), uint32(wr.Step)
		width := f.plan.Width()
		res := &protocol.Result{Version: protocol.Version, Run: wr.Run, Step: wr.Step, Lo: wr.Lo, Hi: wr.Hi, Token: wr.Token, Instance: "rogue", Width: width,
			D: make([]float64, (wr.Hi-wr.Lo)*width)}
		if err := local.Probes(context.Background(), w, wr.Lo, wr.Hi, func(j int, d []float64) error {
			copy(res.D[(j-wr.Lo)*width:], d)
			return nil
		}); err != nil {
			t.Error(err)
			return
		}
		if wait != nil {
			wait(r, wr)
		}
		r.Send(res)
	}
}

// stepsUntil estimates step after step (each against the in-process bits)
// until done reports true, at most 20 steps; it returns the steps run.
func (f *fixture) stepsUntil(t *testing.T, b coordinator.Backend, N int, done func() bool, check func(step int, got, want *coordinator.Accumulator)) int {
	t.Helper()
	local, err := coordinator.NewLocal(f.setup, f.points, f.plan.Settings, 1, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for step := range 20 {
		w := f.work()
		w.ID, w.Step = uint64(100+step), uint32(step)
		want := coordinator.NewAccumulator(f.plan, w.Step, f.r0, true)
		if err := local.Probes(ctx, w, 0, N, want.Add); err != nil {
			t.Fatal(err)
		}
		got := coordinator.NewAccumulator(f.plan, w.Step, f.r0, true)
		if err := b.Probes(ctx, w, 0, N, got.Add); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		check(step, got, want)
		if done() {
			return step + 1
		}
	}
	t.Fatal("the rogue never got a batch in 20 steps")
	return 0
}

// Attack 1: results whose compute time is NaN, 1e300 or 1e7 seconds. They
// are refused (reason "time"), their sender is struck (after two it gets
// no more batches of the call) and their batches go to another at once:
// the run neither hangs nor waits for a timeout (an hour here), and ends
// with the fault-free bits.
func TestAttackNonsenseTimes(t *testing.T) {
	f := newFixture(t, smallLayers, smallCounts, sampler.Settings{Seed: 21})
	c := newCluster(t)
	c.samplers(1)
	times := []float64{math.NaN(), 1e300, 1e7, math.Inf(1), -1}
	var k atomic.Int64
	r := startRogue(t, c.connectAs(c.rogue(0), "rogue"), "rogue-0", forged(f.plan.Width(), func(res *protocol.Result) {
		res.Seconds = times[int(k.Add(1))%len(times)]
	}))
	b := f.backend(t, c.connect("coordinator"), Options{Batch: 4, Timeout: time.Hour})
	n := f.stepsUntil(t, b, 24, func() bool { return r.Answers.Load() >= int64(len(times)) }, func(step int, got, want *coordinator.Accumulator) {
		sameBits(t, "with nonsense times", got, want, f.plan.Layout().N)
	})
	t.Logf("%d steps, the rogue answered %d times; stats %+v", n, r.Answers.Load(), b.Stats())
	if st := b.Stats(); st.Rejected[protocol.ReasonTime] < int64(len(times)) {
		t.Errorf("%d answers of the rogue in %d steps, %d refused for their time: %v", r.Answers.Load(), n, st.Rejected[protocol.ReasonTime], st.Rejected)
	}
	if a := b.Audit(); a.RefusedFrom["rogue-0"] < int64(len(times)) || len(a.RefusedFrom) != 1 {
		t.Errorf("refusals by identity: %v", a.RefusedFrom)
	}
}

// Attack 1, continued: whatever arrives, cancellation stops the dispatch
// loop. Here a rogue floods the results subject with refused results while
// no sampler works; cancelling returns at once.
func TestAttackFloodDoesNotBlockCancel(t *testing.T) {
	f := newFixture(t, smallLayers, smallCounts, sampler.Settings{Seed: 22})
	c := newCluster(t)
	nc := c.connectAs(c.rogue(0), "rogue")
	b := f.backend(t, c.connect("coordinator"), Options{Batch: 1, Timeout: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		acc := coordinator.NewAccumulator(f.plan, 2, f.r0, false)
		done <- b.Probes(ctx, f.work(), 0, 64, acc.Add)
	}()
	var codec protocol.Codec
	bad := codec.MarshalResult(nil, &protocol.Result{Version: protocol.Version, Run: "test", Step: 2, Lo: 0, Hi: 1, Token: 1, Instance: "x", Width: f.plan.Width(),
		D: make([]float64, f.plan.Width()), Seconds: math.NaN()})
	for b.Stats().Rejected[protocol.ReasonTime] < 100 {
		for range 50 {
			nc.Publish("ntkbus.results.test.rogue-0", bad)
		}
		nc.Flush()
		select {
		case err := <-done:
			t.Fatalf("Probes returned before the cancel: %v", err)
		default:
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("after the cancel: %v", err)
	}
}

// Attack 2: a holder of the coordinator's credential answers the samplers'
// pulls with work that claims 2³¹−1 probes of a snapshot of 2³¹−1 chunks
// (or bytes), and announces such snapshots: first alone, until each
// sampler has refused two such answers (before allocating anything,
// counted by reason), then racing the real coordinator's answers to every
// pull. The samplers keep waiting for the real answer, and the run ends
// with the fault-free bits, no batch lost.
func TestAttackHugeClaims(t *testing.T) {
	f := newFixture(t, smallLayers, smallCounts, sampler.Settings{Seed: 23})
	c := newCluster(t)
	c.samplers(2)
	attacker := c.connect("attacker")
	var codec protocol.Codec
	var mu sync.Mutex
	huge := []protocol.SnapshotRef{{Step: 2, Size: 10 << 20, Chunks: math.MaxInt32}, {Step: 2, Size: math.MaxInt32, Chunks: 1}}
	k := 0
	attacker.Subscribe("ntkbus.pull.test.*", func(m *nats.Msg) {
		mu.Lock()
		defer mu.Unlock()
		k++
		m.Respond(codec.MarshalWorkRequest(nil, &protocol.WorkRequest{Version: protocol.Version, Run: "test", Step: 2, Lo: 0, Hi: math.MaxInt32, Snap: huge[k%2], Token: 1, Beat: 1000}))
	})
	announce := func() {
		for _, ref := range huge {
			attacker.Publish("ntkbus.announce.test", codec.MarshalAnnounce(nil, &protocol.Announce{Version: protocol.Version, Run: "test", Snap: ref}))
		}
		attacker.Flush()
	}
	refused := func(w *worker.Worker) int64 {
		rej := w.Rejected()
		return rej[protocol.ReasonRange] + rej[protocol.ReasonSize]
	}
	// Alone: every pull gets the attacker's answer.
	for end := time.Now().Add(time.Minute); refused(c.workers[0]) < 2 || refused(c.workers[1]) < 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the samplers refused %v and %v in a minute", c.workers[0].Rejected(), c.workers[1].Rejected())
		}
		announce()
	}
	b := f.backend(t, c.connect("coordinator"), Options{Batch: 4})
	announce()
	f.stepsUntil(t, b, 24, func() bool { return true }, func(step int, got, want *coordinator.Accumulator) {
		sameBits(t, "with huge claims", got, want, f.plan.Layout().N)
	})
	for i, w := range c.workers {
		t.Logf("sampler %d refused %v", i, w.Rejected())
	}
	if st := b.Stats(); st.Silent != 0 || st.Redispatched != 0 {
		t.Errorf("the samplers lost the coordinator's answers to the attacker's: %+v", st)
	}
}

// Attack 3: a client holding a sampler credential tries to read the other
// samplers' inboxes, the results and the pulls, and to pull and answer in
// another sampler's name (the server refuses each), then pulls under its
// own identity and answers every batch with forged, well-formed
// quotients. Without --verify the forgery reaches the estimate; with it,
// the rogue's first answer is checked, found wrong, the rogue quarantined
// and its batches done again: every step equals the fault-free one.
func TestAttackRogueSamplerCaughtByVerify(t *testing.T) {
	f := newFixture(t, smallLayers, smallCounts, sampler.Settings{Seed: 24})
	n := f.plan.Layout().N
	for _, verify := range []float64{0, 0.05} {
		c := newCluster(t)
		c.samplers(2)
		var mu sync.Mutex
		var denied []string
		nc := c.connectAs(c.rogue(0), "rogue", nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				mu.Lock()
				denied = append(denied, err.Error())
				mu.Unlock()
			}
		}))
		for _, subj := range []string{"ntkbus.>", "ntkbus.results.>", "ntkbus.pull.>", "_INBOX.>", "_INBOX_s0.>", "_INBOX_coordinator.>"} {
			nc.Subscribe(subj, func(*nats.Msg) {})
		}
		nc.Publish("ntkbus.pull.test.s0", nil)
		nc.Publish("ntkbus.results.test.s0", nil)
		waitFor(t, 5*time.Second, "the server to refuse the rogue's subscriptions and publications", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(denied) >= 8
		})
		r := startRogue(t, nc, "rogue-0", forged(f.plan.Width(), func(*protocol.Result) {}))
		b := f.backend(t, c.connect("coordinator"), Options{Batch: 4, Verify: verify, VerifyKey: []byte("test")})
		forgedThrough := false
		f.stepsUntil(t, b, 24, func() bool { return r.Answers.Load() > 0 }, func(step int, got, want *coordinator.Accumulator) {
			if verify > 0 {
				sameBits(t, "a rogue under --verify", got, want, n)
			} else if math.Float64bits(got.Estimate().Trace) != math.Float64bits(want.Estimate().Trace) {
				forgedThrough = true
			}
		})
		st := b.Stats()
		t.Logf("verify %v: the rogue answered %d times; stats %+v", verify, r.Answers.Load(), st)
		if verify == 0 {
			if !forgedThrough {
				t.Error("without --verify the rogue's answers did not change the estimate: the test's attack is no attack")
			}
			continue
		}
		if st.Quarantined != 1 || st.Mismatches == 0 || st.Rejected[protocol.ReasonMismatch] == 0 || st.Verified == 0 {
			t.Errorf("rogue not caught: %+v", st)
		}
		if a := b.Audit(); a.Quarantined != 1 || a.Rejected["mismatch"] != st.Mismatches || a.Quarantines["rogue-0"] != "mismatch" {
			t.Errorf("audit %+v", a)
		}
	}
}

// Attack 4: a chunk request that names a reply subject other than the
// requester's own inbox (the coordinator's own subjects, another
// credential's inbox) gets no answer at all, and is counted; a chunk
// request in another credential's name is refused by the server.
func TestAttackChunkReflection(t *testing.T) {
	f := newFixture(t, smallLayers, smallCounts, sampler.Settings{Seed: 25})
	c := newCluster(t)
	c.samplers(1)
	b := f.backend(t, c.connect("coordinator"), Options{Batch: 4})
	local, _ := coordinator.NewLocal(f.setup, f.points, f.plan.Settings, 1, model.Options{})
	want := f.estimate(t, local, 8, nil)
	got := f.estimate(t, b, 8, nil) // the snapshot is served now
	sameBits(t, "before the reflection", got, want, f.plan.Layout().N)

	spy := c.connect("spy")
	reflected := make(chan *nats.Msg, 8)
	for _, subj := range []string{"ntkbus.announce.victim", "_INBOX_coordinator.victim", "ntkbus.results.test.victim"} {
		if _, err := spy.ChanSubscribe(subj, reflected); err != nil {
			t.Fatal(err)
		}
	}
	spy.Flush()
	var denied atomic.Int64
	rogue := c.connectAs(c.rogue(0), "rogue", nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			denied.Add(1)
		}
	}))
	var codec protocol.Codec
	req := codec.MarshalChunkRequest(nil, &protocol.ChunkRequest{Version: protocol.Version, Run: "test", Step: 2, Index: 0})
	for _, reply := range []string{"ntkbus.announce.victim", "_INBOX_coordinator.victim", "ntkbus.results.test.victim", "_INBOX_s0.victim"} {
		rogue.PublishRequest("ntkbus.snap.test.rogue-0", reply, req)
	}
	rogue.PublishRequest("ntkbus.snap.test.s0", "_INBOX_s0.victim", req)
	rogue.Flush()
	waitFor(t, 5*time.Second, "the coordinator to refuse the requests", func() bool { return b.Stats().Rejected[protocol.ReasonReply] >= 4 })
	waitFor(t, 5*time.Second, "the server to refuse a request in another's name", func() bool { return denied.Load() >= 1 })
	spy.Flush()
	select {
	case m := <-reflected:
		t.Errorf("the coordinator published %d bytes on %s", len(m.Data), m.Subject)
	default:
	}
	if n := b.Stats().Rejected[protocol.ReasonReply]; n != 4 {
		t.Errorf("%d requests refused for their reply subject, want 4", n)
	}
}

// The embedded server: nobody gets in without one of this run's nkeys,
// every credential is its own, none is a password the server warns about,
// and a sampler's credential cannot read results or other inboxes nor
// publish under another identity.
func TestEmbeddedServerCredentials(t *testing.T) {
	var logged captured
	emb, err := StartEmbedded(EmbeddedOptions{Listen: "127.0.0.1:0", Samplers: []string{"a", "b"}, Log: hclog.New(&hclog.LoggerOptions{Output: &logged, Level: hclog.Trace})})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Shutdown()
	if strings.Contains(logged.String(), "Plaintext") || strings.Contains(logged.String(), "[WARN]") {
		t.Errorf("the embedded server warned at start:\n%s", logged.String())
	}
	if nc, err := nats.Connect(emb.URL, nats.Name("anonymous")); err == nil {
		nc.Close()
		t.Error("connected without credentials")
	}
	stranger, _ := NewCredential("a") // the right identity, another key
	if nc, err := nats.Connect(emb.URL, stranger.Option()); err == nil {
		nc.Close()
		t.Error("connected with a key the server does not know")
	}
	keys := map[string]bool{emb.Coordinator.Public: true}
	for _, c := range emb.Samplers {
		keys[c.Public] = true
	}
	other, err := StartEmbedded(EmbeddedOptions{Listen: "127.0.0.1:0", Samplers: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Shutdown()
	if len(keys) != 3 || keys[other.Samplers["a"].Public] {
		t.Errorf("credentials are not each their own: %v", keys)
	}
	var denied atomic.Int64
	nc, err := nats.Connect(emb.URL, emb.Samplers["a"].Option(), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			denied.Add(1)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, subj := range []string{"ntkbus.results.>", "_INBOX.>", "_INBOX_b.>", "ntkbus.pull.>"} {
		nc.Subscribe(subj, func(*nats.Msg) {})
	}
	for _, subj := range []string{"ntkbus.results.r.b", "ntkbus.pull.r.b", "ntkbus.announce.r", "$JS.API.STREAM.LIST"} {
		nc.Publish(subj, nil)
	}
	waitFor(t, 5*time.Second, "eight refusals", func() bool { return denied.Load() == 8 })
	for _, listen := range []string{"127.0.0.1:0", "localhost:4222", "[::1]:0"} {
		if !IsLoopback(listen) {
			t.Errorf("%s is loopback", listen)
		}
	}
	for _, listen := range []string{"0.0.0.0:0", ":4222", "10.0.0.1:4222", "example.org:4222"} {
		if IsLoopback(listen) {
			t.Errorf("%s is not loopback", listen)
		}
	}
	// The seed a joining sampler reads is its owner's alone.
	path := filepath.Join(t.TempDir(), "join.nk")
	os.WriteFile(path, []byte("old"), 0o644)
	if err := emb.Samplers["b"].WriteSeed(path); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("seed file mode %v (%v)", fi.Mode(), err)
	}
	opt, err := nats.NkeyOptionFromSeed(path)
	if err != nil {
		t.Fatal(err)
	}
	if nc, err := nats.Connect(emb.URL, opt); err != nil {
		t.Errorf("the written seed does not connect: %v", err)
	} else {
		nc.Close()
	}
}

// captured is a log sink for tests.
type captured struct {
	mu sync.Mutex
	b  strings.Builder
}

func (c *captured) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.Write(p)
}
func (c *captured) String() string { c.mu.Lock(); defer c.mu.Unlock(); return c.b.String() }

// Attack 3 in training: a rogue that forges every answer from the first
// step on is caught on its first answer, and the run ends at the θ of the
// fault-free fused run, to the bit.
func TestTrainingWithRogueUnderVerify(t *testing.T) {
	setup, _ := model.NewSetup(model.Config{Problem: "wave", Layers: smallLayers})
	cfg := coordinator.TrainConfig{
		Steps: 6, Mode: coordinator.Estimated, Alpha: 0.2, InitProbes: 12, StepProbes: 4,
		Probe: sampler.Settings{Seed: 4}, Optimizer: "adam", Schedule: optim.Schedule{LR: 1e-3},
		Resample: true, PointSeed: 9, Counts: smallCounts,
	}
	theta0 := setup.InitTheta(2)
	run := func(b coordinator.Backend, fused bool) []float64 { return trainTheta(t, setup, cfg, theta0, b, fused) }
	want := run(nil, true)
	cl := newCluster(t)
	cl.samplers(2)
	width := probeWidth(t, setup, cfg.Probe)
	r := startRogue(t, cl.connectAs(cl.rogue(0), "rogue"), "rogue-0", forged(width, func(res *protocol.Result) {
		for i := range res.D {
			res.D[i] = float64(i) // plausible, finite, wrong
		}
	}))
	b, err := New(cl.connect("coordinator"), Options{Run: "train", Setup: setup, Probe: cfg.Probe, Width: width, Batch: 2, Verify: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got := run(b, false)
	for i := range want {
		if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
			t.Fatalf("θ after %d steps differs at %d with a rogue under --verify (it answered %d times; %+v)", cfg.Steps, i, r.Answers.Load(), b.Stats())
		}
	}
	if st := b.Stats(); r.Answers.Load() > 0 && st.Quarantined != 1 {
		t.Errorf("the rogue answered %d times and was not quarantined: %+v", r.Answers.Load(), st)
	}
	t.Logf("the rogue answered %d times; %+v", r.Answers.Load(), b.Stats())
}

// The embedded server with TLS (for a --listen off loopback): clients over
// the network must speak TLS, connections in this process need none.
func TestEmbeddedServerTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	emb, err := StartEmbedded(EmbeddedOptions{Listen: "127.0.0.1:0", TLSCert: cert, TLSKey: key, Samplers: []string{JoinIdentity}})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Shutdown()
	if !strings.HasPrefix(emb.URL, "tls://") || !strings.Contains(emb.JoinCommand(JoinIdentity, "seed"), "--nats tls://") {
		t.Errorf("URL %s, join command %s", emb.URL, emb.JoinCommand(JoinIdentity, "seed"))
	}
	in, err := emb.Connect(emb.Coordinator, "in process")
	if err != nil {
		t.Fatalf("in process: %v", err)
	}
	in.Close()
	join := emb.Samplers[JoinIdentity]
	plain := strings.Replace(emb.URL, "tls://", "nats://", 1)
	if nc, err := nats.Connect(plain, join.Option()); err == nil {
		nc.Close()
		t.Error("a plain-text client was accepted")
	}
	nc, err := nats.Connect(emb.URL, nats.RootCAs(cert), join.Option())
	if err != nil {
		t.Fatalf("TLS client: %v", err)
	}
	nc.Close()
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ntkbus test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return cert, key
}

// When every sampler disagrees with this process (samplers on other
// hardware, or nothing but rogues), --verify quarantines them all and the
// call fails after --wait-samplers with the explanation, instead of waiting
// forever; nothing of theirs reaches the accumulator.
func TestVerifyEverySamplerWrong(t *testing.T) {
	f := newFixture(t, smallLayers, smallCounts, sampler.Settings{Seed: 26})
	c := newCluster(t)
	startRogue(t, c.connectAs(c.rogue(0), "rogue"), "rogue-0", forged(f.plan.Width(), func(*protocol.Result) {}))
	b := f.backend(t, c.connect("coordinator"), Options{Batch: 4, Verify: 0.05, WaitSamplers: time.Second})
	acc := coordinator.NewAccumulator(f.plan, 2, f.r0, false)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := b.Probes(ctx, f.work(), 0, 8, acc.Add)
	if err == nil || !strings.Contains(err.Error(), "rogue-0 (quarantined") || !strings.Contains(err.Error(), "BLAS") {
		t.Fatalf("Probes: %v", err)
	}
	if acc.Applied() != 0 {
		t.Errorf("%d probes of quarantined samplers reached the accumulator", acc.Applied())
	}
}

// A client with a sampler credential that takes every batch it can and
// answers each with an error cannot end the run: after maxStrikes failures
// in a call it gets no more of its batches; the honest samplers compute
// every probe, step after step.
func TestRogueErrorsDoNotEndTheRun(t *testing.T) {
	f := newFixture(t, smallLayers, smallCounts, sampler.Settings{Seed: 21})
	cl := newCluster(t)
	cl.samplers(2)
	startRogue(t, cl.connectAs(cl.rogue(0), "rogue"), "rogue-0", func(r *rogue, wr *protocol.WorkRequest) { r.Fail(wr, protocol.CodeInternal) })
	b := f.backend(t, cl.connect("coordinator"), Options{Batch: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for step := range 6 {
		w := f.work()
		w.ID, w.Step = uint64(100+step), uint32(step)
		acc := coordinator.NewAccumulator(f.plan, w.Step, f.r0, false)
		if err := b.Probes(ctx, w, 0, 48, acc.Add); err != nil {
			t.Fatalf("step %d: %v (stats %+v)", step, err, b.Stats())
		}
		if acc.Applied() != 48 {
			t.Fatalf("step %d: %d of 48 probes", step, acc.Applied())
		}
	}
	if st := b.Stats(); st.SamplerErrors == 0 || st.SamplerErrors > 2*6 {
		t.Fatalf("the rogue's errors: %d in 6 steps, want 1 to 2 per step (stats %+v)", st.SamplerErrors, st)
	}
}

// A client that takes batches and says forever that it is at work, but
// never answers, cannot hold a run: an idle honest sampler computes a copy
// of its overdue batches; and with no honest sampler, the call ends after
// --wait-samplers naming the holder.
func TestEndlessProgressCannotHoldTheRun(t *testing.T) {
	f := newFixture(t, smallLayers, smallCounts, sampler.Settings{Seed: 27})
	stall := func(r *rogue, wr *protocol.WorkRequest) {
		go func() {
			for range 400 {
				r.Progress(wr, 1)
				select {
				case <-r.Stopping():
					return
				case <-time.After(time.Duration(wr.Beat) * time.Millisecond):
				}
			}
		}()
	}
	cl := newCluster(t)
	startRogue(t, cl.connectAs(cl.rogue(0), "rogue"), "rogue-0", stall)
	b := f.backend(t, cl.connect("coordinator"), Options{Batch: 4, Timeout: 4 * time.Second, WaitSamplers: time.Second})
	acc := coordinator.NewAccumulator(f.plan, 2, f.r0, false)
	err := b.Probes(context.Background(), f.work(), 0, 8, acc.Add)
	if err == nil || !strings.Contains(err.Error(), "rogue-0 (probes") {
		t.Fatalf("with nobody but a stalling rogue: %v", err)
	}
	cl.samplers(1)
	b2 := f.backend(t, cl.connect("coordinator2"), Options{Run: "test2", Batch: 4, Timeout: 4 * time.Second})
	local, _ := coordinator.NewLocal(f.setup, f.points, f.plan.Settings, 1, model.Options{})
	for step := range 3 {
		w := f.work()
		w.ID, w.Step = uint64(200+step), uint32(step)
		want := coordinator.NewAccumulator(f.plan, w.Step, f.r0, true)
		local.Probes(context.Background(), w, 0, 24, want.Add)
		got := coordinator.NewAccumulator(f.plan, w.Step, f.r0, true)
		if err := b2.Probes(context.Background(), w, 0, 24, got.Add); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		sameBits(t, "beside a stalling rogue", got, want, f.plan.Layout().N)
	}
	t.Logf("stats %+v", b2.Stats())
}

// A sampler cannot answer a batch given to another: a result under its
// own subject with another identity's assignment token is refused (reason
// "sender") and struck, and publishing under the other's subject is refused
// by the server. The run ends with the fault-free bits.
func TestAnswerForAnotherSamplerIsRefused(t *testing.T) {
	f := newFixture(t, smallLayers, smallCounts, sampler.Settings{Seed: 21})
	c := newCluster(t)
	c.samplers(1)
	// The rogue takes batches, and answers with the token of the
	// assignment before its own: someone else's.
	r := startRogue(t, c.connectAs(c.rogue(0), "rogue"), "rogue-0", forged(f.plan.Width(), func(res *protocol.Result) { res.Token-- }))
	b := f.backend(t, c.connect("coordinator"), Options{Batch: 4})
	f.stepsUntil(t, b, 24, func() bool { return r.Answers.Load() >= 2 }, func(step int, got, want *coordinator.Accumulator) {
		sameBits(t, "with answers under others' assignments", got, want, f.plan.Layout().N)
	})
	if st := b.Stats(); st.Rejected[protocol.ReasonSender] < r.Answers.Load()-1 {
		t.Errorf("%d answers of the rogue, %d refused for their sender: %v", r.Answers.Load(), st.Rejected[protocol.ReasonSender], st.Rejected)
	}
}

// Chunk requests are bounded per identity: a credential that took no
// batch gets two copies of the served snapshot, however often it asks (60
// bytes a request once returned the 4 MB snapshot without limit); the
// samplers that work are unaffected, and the next snapshot opens a new
// quota.
func TestChunkRequestsBoundedPerIdentity(t *testing.T) {
	f := newFixture(t, smallLayers, smallCounts, sampler.Settings{Seed: 28})
	c := newCluster(t)
	c.samplers(2)
	b := f.backend(t, c.connect("coordinator"), Options{Batch: 4})
	f.estimate(t, b, 16, nil) // the snapshot is served now
	rogue := c.connectAs(c.rogue(0), "rogue")
	replies := make(chan *nats.Msg, 256)
	if _, err := rogue.ChanSubscribe("_INBOX_rogue-0.x.*", replies); err != nil {
		t.Fatal(err)
	}
	var codec protocol.Codec
	req := codec.MarshalChunkRequest(nil, &protocol.ChunkRequest{Version: protocol.Version, Run: "test", Step: 2, Index: 0})
	const asks = 100
	for i := range asks {
		rogue.PublishRequest("ntkbus.snap.test.rogue-0", fmt.Sprintf("_INBOX_rogue-0.x.%d", i), req)
	}
	rogue.Flush()
	served, refused := 0, 0
	for served+refused < asks {
		select {
		case m := <-replies:
			if m.Header.Get(protocol.HeaderError) != "" {
				refused++
				if !strings.Contains(m.Header.Get(protocol.HeaderError), "rate") {
					t.Errorf("refusal %q", m.Header.Get(protocol.HeaderError))
				}
			} else {
				served++
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%d served, %d refused of %d asks, then nothing", served, refused, asks)
		}
	}
	b.mu.RLock()
	n := len(b.chunks)
	b.mu.RUnlock()
	if served != spareCopies*n {
		t.Errorf("%d chunks served of a %d-chunk snapshot to a client that took no batch, want %d", served, n, spareCopies*n)
	}
	if st := b.Stats(); st.Rejected[protocol.ReasonRate] != int64(refused) {
		t.Errorf("refusals counted %v, sent %d", st.Rejected, refused)
	}
	// The samplers still fetch a new step's snapshot.
	w := f.work()
	w.ID, w.Step = 77, 7
	acc := coordinator.NewAccumulator(f.plan, w.Step, f.r0, false)
	if err := b.Probes(context.Background(), w, 0, 16, acc.Add); err != nil || acc.Applied() != 16 {
		t.Fatalf("after the flood: %v, %d probes", err, acc.Applied())
	}
}

// One credential flooding the results subject cannot crowd out the others:
// beyond its rate its messages are dropped before they queue, and the
// honest samplers' answers all arrive.
func TestFloodOfOneIdentityIsCapped(t *testing.T) {
	f := newFixture(t, smallLayers, smallCounts, sampler.Settings{Seed: 29})
	c := newCluster(t)
	c.samplers(2)
	b := f.backend(t, c.connect("coordinator"), Options{Batch: 2})
	nc := c.connectAs(c.rogue(0), "rogue")
	var codec protocol.Codec
	junk := codec.MarshalResult(nil, &protocol.Result{Version: protocol.Version, Run: "test", Step: 2, Lo: 0, Hi: 1, Token: 1, Instance: "x", Width: 1, D: []float64{1}})
	stop := make(chan struct{})
	flooded := make(chan struct{})
	go func() {
		defer close(flooded)
		for {
			select {
			case <-stop:
				return
			default:
			}
			for range 1000 {
				nc.Publish("ntkbus.results.test.rogue-0", junk)
			}
			nc.Flush()
		}
	}()
	local, _ := coordinator.NewLocal(f.setup, f.points, f.plan.Settings, 1, model.Options{})
	want := f.estimate(t, local, 32, nil)
	got := f.estimate(t, b, 32, nil)
	close(stop)
	<-flooded
	sameBits(t, "beside a flood", got, want, f.plan.Layout().N)
	if st := b.Stats(); st.Rejected[protocol.ReasonRate] == 0 || st.Silent != 0 {
		t.Errorf("stats %+v", st)
	}
}
