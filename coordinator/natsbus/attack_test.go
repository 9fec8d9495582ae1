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

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"ntkbus/coordinator"
	"ntkbus/coordinator/optim"
	"ntkbus/model"
	"ntkbus/protocol"
	"ntkbus/sampler"
)

// The attacks of issue 13, each on a real server with the deployment's
// permissions (the embedded server): the run completes with the fault-free
// bits, the samplers and the coordinator survive, and the rejection is
// counted by reason.

// rogue is a sampler instance under the sampler credentials that answers
// work as answer says: it registers as an instance of the sampler service,
// so discovery counts it, and never declines an offer.
type rogue struct {
	id      string
	answers atomic.Int64
}

func startRogue(t *testing.T, nc *nats.Conn, answer func(r *rogue, req micro.Request, wr *protocol.WorkRequest)) *rogue {
	t.Helper()
	svc, err := micro.AddService(nc, micro.Config{Name: protocol.ServiceName, Version: "2.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Stop() })
	r := &rogue{id: svc.Info().ID}
	var codec protocol.Codec
	var mu sync.Mutex
	err = svc.AddEndpoint("probe", micro.HandlerFunc(func(req micro.Request) {
		mu.Lock()
		defer mu.Unlock()
		var wr protocol.WorkRequest
		if codec.UnmarshalWorkRequest(req.Data(), &wr) != nil {
			return
		}
		req.Respond(nil, micro.WithHeaders(micro.Headers{protocol.HeaderStatus: {protocol.StatusAccepted}, protocol.HeaderInstance: {r.id}}))
		answer(r, req, &wr)
		r.answers.Add(1)
	}), micro.WithEndpointSubject("ntkbus.work"), micro.WithEndpointQueueGroup("ntkbus-samplers"))
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	return r
}

// forged answers with a well-formed result: the right run, step, range and
// width, finite values, and what fill says.
func forged(width int, fill func(*protocol.Result)) func(*rogue, micro.Request, *protocol.WorkRequest) {
	var codec protocol.Codec
	return func(r *rogue, req micro.Request, wr *protocol.WorkRequest) {
		res := &protocol.Result{Version: protocol.Version, Run: wr.Run, Step: wr.Step, Lo: wr.Lo, Hi: wr.Hi, Sampler: r.id, Width: width,
			D: make([]float64, (wr.Hi-wr.Lo)*width), Seconds: 0.01}
		for i := range res.D {
			res.D[i] = 1
		}
		fill(res)
		req.Respond(codec.MarshalResult(nil, res))
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
// are refused (reason "time") and their batches offered again at once: the
// run neither hangs nor waits for a deadline (an hour here), and ends with
// the fault-free bits.
func TestAttackNonsenseTimes(t *testing.T) {
	f := newFixture(t, smallLayers, smallCounts, sampler.Settings{Seed: 21})
	c := newCluster(t)
	c.samplers(1)
	times := []float64{math.NaN(), 1e300, 1e7, math.Inf(1), -1}
	var k atomic.Int64
	r := startRogue(t, c.connectAs(c.emb.Sampler, "rogue"), forged(f.plan.Width(), func(res *protocol.Result) {
		res.Seconds = times[int(k.Add(1))%len(times)]
	}))
	b := f.backend(t, c.connect("coordinator"), Options{Batch: 4, Timeout: time.Hour})
	n := f.stepsUntil(t, b, 24, func() bool { return r.answers.Load() >= int64(len(times)) }, func(step int, got, want *coordinator.Accumulator) {
		sameBits(t, "with nonsense times", got, want, f.plan.Layout().N)
	})
	t.Logf("%d steps, the rogue answered %d times; stats %+v", n, r.answers.Load(), b.Stats())
	if st := b.Stats(); st.Rejected[protocol.ReasonTime] < int64(len(times)) {
		t.Errorf("%d answers of the rogue in %d steps, %d refused for their time: %v", r.answers.Load(), n, st.Rejected[protocol.ReasonTime], st.Rejected)
	}
}

// Attack 1, continued: whatever arrives, cancellation stops the dispatch
// loop. Here the only sampler answers every offer at once with a refused
// result, a flood the loop keeps taking; cancelling returns at once.
func TestAttackFloodDoesNotBlockCancel(t *testing.T) {
	f := newFixture(t, smallLayers, smallCounts, sampler.Settings{Seed: 22})
	c := newCluster(t)
	r := startRogue(t, c.connectAs(c.emb.Sampler, "rogue"), forged(f.plan.Width(), func(res *protocol.Result) { res.Seconds = math.NaN() }))
	b := f.backend(t, c.connect("coordinator"), Options{Batch: 1, Timeout: time.Hour, MaxAttempts: 1000})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		acc := coordinator.NewAccumulator(f.plan, 2, f.r0, false)
		done <- b.Probes(ctx, f.work(), 0, 64, acc.Add)
	}()
	for r.answers.Load() < 100 {
		select {
		case err := <-done:
			t.Fatalf("Probes returned before the cancel: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("after the cancel: %v", err)
	}
	if b.Stats().Rejected[protocol.ReasonTime] == 0 {
		t.Error("no answer refused for its time")
	}
}

// Attack 2: a work request and an announcement that claim 2³¹−1 chunks (or
// a snapshot of 2³¹−1 bytes, or 2³¹−1 probes), sent to every sampler by a
// holder of the coordinator's credential. The samplers refuse them before
// allocating anything, count them by reason, and go on serving the run,
// which ends with the fault-free bits.
func TestAttackHugeClaims(t *testing.T) {
	f := newFixture(t, smallLayers, smallCounts, sampler.Settings{Seed: 23})
	c := newCluster(t)
	c.samplers(2)
	b := f.backend(t, c.connect("coordinator"), Options{Batch: 4})
	attacker := c.connect("attacker")
	var codec protocol.Codec
	var sent bool
	f.stepsUntil(t, b, 24, func() bool { return sent }, func(step int, got, want *coordinator.Accumulator) {
		sameBits(t, "with huge claims", got, want, f.plan.Layout().N)
		if sent {
			return
		}
		sent = true
		huge := protocol.SnapshotRef{Step: 0, Size: 10 << 20, Chunks: math.MaxInt32}
		for _, ref := range []protocol.SnapshotRef{huge, {Step: 0, Size: math.MaxInt32, Chunks: 1}} {
			attacker.Publish("ntkbus.announce.test", codec.MarshalAnnounce(nil, &protocol.Announce{Version: protocol.Version, Run: "test", Snap: ref}))
			for i := range 2 { // one for each sampler, as the queue group picks
				attacker.PublishRequest("ntkbus.work", fmt.Sprintf("ntkbus.results.other.%d%d", ref.Size, i), codec.MarshalWorkRequest(nil, &protocol.WorkRequest{
					Version: protocol.Version, Run: "test", Step: 0, Lo: 0, Hi: math.MaxInt32, Snap: ref, Hold: 3}))
			}
		}
		attacker.Flush()
	})
	// Wait for the samplers to have seen them all: two announcements each,
	// and the four work requests between them.
	waitFor(t, 10*time.Second, "the samplers to refuse the claims", func() bool {
		var n int64
		for _, w := range c.workers {
			for _, v := range w.Rejected() {
				n += v
			}
		}
		return n >= 2*2+4
	})
	for i, w := range c.workers {
		rej := w.Rejected()
		t.Logf("sampler %d refused %v", i, rej)
		if rej[protocol.ReasonRange]+rej[protocol.ReasonSize] < 2 {
			t.Errorf("sampler %d refused %v", i, rej)
		}
	}
	// They still serve.
	f.stepsUntil(t, b, 8, func() bool { return true }, func(step int, got, want *coordinator.Accumulator) {
		sameBits(t, "after the claims", got, want, f.plan.Layout().N)
	})
}

// Attack 3: a client holding only the sampler credentials tries to read
// every instance's work, results and inboxes (the server refuses each),
// then joins the queue group and answers every batch it gets first with
// forged, well-formed quotients. Without --verify the forgery reaches the
// estimate; with it, the rogue's first answer is checked, found wrong, the
// rogue quarantined and its batches done again: every step equals the
// fault-free one.
func TestAttackRogueSamplerCaughtByVerify(t *testing.T) {
	f := newFixture(t, smallLayers, smallCounts, sampler.Settings{Seed: 24})
	n := f.plan.Layout().N
	for _, verify := range []float64{0, 0.05} {
		c := newCluster(t)
		c.samplers(2)
		var mu sync.Mutex
		var denied []string
		nc := c.connectAs(c.emb.Sampler, "rogue", nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				mu.Lock()
				denied = append(denied, err.Error())
				mu.Unlock()
			}
		}))
		for _, subj := range []string{"ntkbus.work", "ntkbus.>", "ntkbus.results.>", "_INBOX.>", "_INBOX_coordinator.>"} {
			nc.Subscribe(subj, func(*nats.Msg) {})
		}
		nc.QueueSubscribe("ntkbus.work", "rogues", func(*nats.Msg) {})
		waitFor(t, 5*time.Second, "the server to refuse the rogue's subscriptions", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(denied) >= 6
		})
		r := startRogue(t, nc, forged(f.plan.Width(), func(*protocol.Result) {}))
		b := f.backend(t, c.connect("coordinator"), Options{Batch: 4, Verify: verify, VerifyKey: []byte("test")})
		forgedThrough := false
		f.stepsUntil(t, b, 24, func() bool { return r.answers.Load() > 0 }, func(step int, got, want *coordinator.Accumulator) {
			if verify > 0 {
				sameBits(t, "a rogue under --verify", got, want, n)
			} else if math.Float64bits(got.Estimate().Trace) != math.Float64bits(want.Estimate().Trace) {
				forgedThrough = true
			}
		})
		st := b.Stats()
		t.Logf("verify %v: the rogue answered %d times; stats %+v", verify, r.answers.Load(), st)
		if verify == 0 {
			if !forgedThrough {
				t.Error("without --verify the rogue's answers did not change the estimate: the test's attack is no attack")
			}
			continue
		}
		if st.Quarantined != 1 || st.Mismatches == 0 || st.Rejected[protocol.ReasonMismatch] == 0 || st.Verified == 0 {
			t.Errorf("rogue not caught: %+v", st)
		}
		if a := b.Audit(); a.Quarantined != 1 || a.Rejected["mismatch"] != st.Mismatches {
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
	for _, subj := range []string{"ntkbus.announce.victim", "_INBOX.victim", "ntkbus.results.test.victim"} {
		if _, err := spy.ChanSubscribe(subj, reflected); err != nil {
			t.Fatal(err)
		}
	}
	spy.Flush()
	var denied atomic.Int64
	rogue := c.connectAs(c.emb.Sampler, "rogue", nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			denied.Add(1)
		}
	}))
	var codec protocol.Codec
	req := codec.MarshalChunkRequest(nil, &protocol.ChunkRequest{Version: protocol.Version, Run: "test", Step: 2, Index: 0})
	for _, reply := range []string{"ntkbus.announce.victim", "_INBOX.victim", "ntkbus.results.test.victim", "_INBOX_other.victim"} {
		rogue.PublishRequest("ntkbus.snap.test.sampler", reply, req)
	}
	rogue.PublishRequest("ntkbus.snap.test.coordinator", "_INBOX_coordinator.victim", req)
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

// The embedded server: nobody gets in without this run's passwords, and a
// sampler's credentials cannot read results or the coordinator's inboxes.
func TestEmbeddedServerCredentials(t *testing.T) {
	c := newCluster(t)
	for name, opt := range map[string]nats.Option{
		"no credentials":   nats.Name("anonymous"),
		"a wrong password": nats.UserInfo(SamplerUser, "guess"),
	} {
		if nc, err := nats.Connect(c.url, opt); err == nil {
			nc.Close()
			t.Errorf("%s: connected", name)
		}
	}
	if c.emb.Sampler.Password == c.emb.Coordinator.Password || len(c.emb.Sampler.Password) < 32 {
		t.Errorf("passwords %q, %q", c.emb.Sampler.Password, c.emb.Coordinator.Password)
	}
	other, err := StartEmbedded(EmbeddedOptions{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Shutdown()
	if other.Sampler.Password == c.emb.Sampler.Password {
		t.Error("two servers drew the same password")
	}
	var denied atomic.Int64
	nc := c.connectAs(c.emb.Sampler, "sampler", nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			denied.Add(1)
		}
	}))
	for _, subj := range []string{"ntkbus.results.>", "_INBOX.>", "ntkbus.work"} {
		nc.Subscribe(subj, func(*nats.Msg) {})
	}
	waitFor(t, 5*time.Second, "three refusals", func() bool { return denied.Load() == 3 })
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
}

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
	r := startRogue(t, cl.connectAs(cl.emb.Sampler, "rogue"), forged(width, func(res *protocol.Result) {
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
			t.Fatalf("θ after %d steps differs at %d with a rogue under --verify (it answered %d times; %+v)", cfg.Steps, i, r.answers.Load(), b.Stats())
		}
	}
	if st := b.Stats(); r.answers.Load() > 0 && st.Quarantined != 1 {
		t.Errorf("the rogue answered %d times and was not quarantined: %+v", r.answers.Load(), st)
	}
	t.Logf("the rogue answered %d times; %+v", r.answers.Load(), b.Stats())
}

// The embedded server with TLS (for a --listen off loopback): clients over
// the network must speak TLS, connections in this process need none.
func TestEmbeddedServerTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	emb, err := StartEmbedded(EmbeddedOptions{Listen: "127.0.0.1:0", TLSCert: cert, TLSKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Shutdown()
	if !strings.HasPrefix(emb.URL, "tls://") || !strings.Contains(emb.JoinCommand(), "--nats tls://") {
		t.Errorf("URL %s, join command %s", emb.URL, emb.JoinCommand())
	}
	in, err := emb.Connect(emb.Coordinator, "in process")
	if err != nil {
		t.Fatalf("in process: %v", err)
	}
	in.Close()
	plain := strings.Replace(emb.URL, "tls://", "nats://", 1)
	if nc, err := nats.Connect(plain, nats.UserInfo(emb.Sampler.User, emb.Sampler.Password)); err == nil {
		nc.Close()
		t.Error("a plain-text client was accepted")
	}
	nc, err := nats.Connect(emb.URL, nats.RootCAs(cert), nats.UserInfo(emb.Sampler.User, emb.Sampler.Password))
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
// call fails with the explanation instead of offering batches forever.
func TestVerifyEverySamplerWrong(t *testing.T) {
	f := newFixture(t, smallLayers, smallCounts, sampler.Settings{Seed: 26})
	c := newCluster(t)
	startRogue(t, c.connectAs(c.emb.Sampler, "rogue"), forged(f.plan.Width(), func(*protocol.Result) {}))
	b := f.backend(t, c.connect("coordinator"), Options{Batch: 4, Verify: 0.05})
	acc := coordinator.NewAccumulator(f.plan, 2, f.r0, false)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := b.Probes(ctx, f.work(), 0, 8, acc.Add)
	if err == nil || !strings.Contains(err.Error(), "every sampler (1)") || !strings.Contains(err.Error(), "BLAS") {
		t.Fatalf("Probes: %v", err)
	}
	if acc.Applied() != 0 {
		t.Errorf("%d probes of quarantined samplers reached the accumulator", acc.Applied())
	}
}

// A client with the sampler credentials that takes every batch it can and
// answers each with an error cannot end the run: after maxStrikes failures
// in a call it gets no more of its batches, and its failures stop counting
// against them; the honest samplers compute every probe, step after step.
func TestRogueErrorsDoNotEndTheRun(t *testing.T) {
	f := newFixture(t, smallLayers, smallCounts, sampler.Settings{Seed: 21})
	cl := newCluster(t)
	cl.samplers(2)
	startRogue(t, cl.connectAs(cl.emb.Sampler, "rogue"), func(r *rogue, req micro.Request, wr *protocol.WorkRequest) {
		var codec protocol.Codec
		se := protocol.SamplerError{Version: protocol.Version, Run: wr.Run, Step: wr.Step, Lo: wr.Lo, Hi: wr.Hi, Sampler: r.id, Code: protocol.CodeInternal, Message: "no"}
		req.Error(protocol.CodeInternal, "no", codec.MarshalSamplerError(nil, &se))
	})
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
	if st := b.Stats(); st.SamplerErrors == 0 {
		t.Fatalf("the rogue never got a batch (stats %+v): the test proves nothing", st)
	}
}

// A client with the sampler credentials that declines every offer, with no
// other sampler, ends the call with an error after WaitSamplers instead of
// keeping it offering forever.
func TestEveryOfferDeclinedEndsTheCall(t *testing.T) {
	f := newFixture(t, smallLayers, smallCounts, sampler.Settings{Seed: 21})
	cl := newCluster(t)
	nc := cl.connectAs(cl.emb.Sampler, "rogue")
	svc, err := micro.AddService(nc, micro.Config{Name: protocol.ServiceName, Version: "2.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	id := svc.Info().ID
	subj, _ := protocol.NewSubjects(protocol.DefaultPrefix)
	busy := micro.Headers{protocol.HeaderStatus: {protocol.StatusBusy}, protocol.HeaderInstance: {id}}
	if err := svc.AddEndpoint("probe", micro.HandlerFunc(func(req micro.Request) { req.Respond(nil, micro.WithHeaders(busy)) }),
		micro.WithEndpointSubject(subj.Work()), micro.WithEndpointQueueGroup(subj.QueueGroup())); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	b := f.backend(t, cl.connect("coordinator"), Options{Batch: 4, WaitSamplers: 2 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	acc := coordinator.NewAccumulator(f.plan, 2, f.r0, false)
	start := time.Now()
	err = b.Probes(ctx, f.work(), 0, 24, acc.Add)
	if err == nil || !strings.Contains(err.Error(), "every offer declined") {
		t.Fatalf("after %v: %v, want the call to end on its declined offers", time.Since(start), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("the call ran until the context ended: %v", err)
	}
}

// A result that names another sampler instance than the one that took its
// batch is refused (reason "sender"): trust and quarantine go by that name,
// so a rogue cannot shed a quarantine by renaming itself. The run ends with
// the fault-free bits.
func TestAnswerNamingAnotherSamplerIsRefused(t *testing.T) {
	f := newFixture(t, smallLayers, smallCounts, sampler.Settings{Seed: 21})
	c := newCluster(t)
	c.samplers(1)
	r := startRogue(t, c.connectAs(c.emb.Sampler, "rogue"), forged(f.plan.Width(), func(res *protocol.Result) {
		res.Sampler = "someoneElse1234"
	}))
	b := f.backend(t, c.connect("coordinator"), Options{Batch: 4})
	f.stepsUntil(t, b, 24, func() bool { return r.answers.Load() >= 2 }, func(step int, got, want *coordinator.Accumulator) {
		sameBits(t, "with renamed answers", got, want, f.plan.Layout().N)
	})
	if st := b.Stats(); st.Rejected[protocol.ReasonSender] < r.answers.Load() {
		t.Errorf("%d answers of the rogue, %d refused for their sender: %v", r.answers.Load(), st.Rejected[protocol.ReasonSender], st.Rejected)
	}
}
