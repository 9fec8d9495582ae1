package deploy

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"ntkbus/coordinator/natsbus"
	"ntkbus/coordinator/natsbus/attack"
	"ntkbus/protocol"
	"ntkbus/sampler/worker"
)

// The attack table of issue 21, rerun by the attack client against a real
// nats-server started from the deploy configuration with generated keys,
// and against the embedded server: every row ends with the in-process
// bits, and the estimate names the identities it refused.

// bus is a server with sampler identities sampler-1 … sampler-6.
type bus struct {
	name        string
	url         string
	coordinator nats.Option
	sampler     func(id string) nats.Option
}

const busSamplers = 6

func deployBus(t *testing.T) *bus {
	t.Helper()
	port, rport := freePort(t), freePort(t)
	natsEnv(t, "attack", port, rport, []int{rport})
	dir, c := configDir(t, busSamplers)
	url := startNode(t, filepath.Join(dir, "nats.conf"), nil).ClientURL()
	return &bus{name: "deploy config", url: url, coordinator: as(t, c.Coordinator),
		sampler: func(id string) nats.Option { return as(t, c.Samplers[id]) }}
}

func embeddedBus(t *testing.T) *bus {
	t.Helper()
	var ids []string
	for i := 1; i <= busSamplers; i++ {
		ids = append(ids, SamplerID(i))
	}
	emb, err := natsbus.StartEmbedded(natsbus.EmbeddedOptions{Listen: "127.0.0.1:0", Samplers: ids})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Shutdown)
	return &bus{name: "embedded", url: emb.URL, coordinator: emb.Coordinator.Option(),
		sampler: func(id string) nats.Option { return emb.Samplers[id].Option() }}
}

// connect opens a connection as identity id ("" for the coordinator),
// counting the server's refusals in denied.
func (b *bus) connect(t *testing.T, id string, denied *atomic.Int64) *nats.Conn {
	t.Helper()
	cred := b.coordinator
	if id != "" {
		cred = b.sampler(id)
	}
	nc, err := nats.Connect(b.url, cred, nats.Name(id), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if denied != nil && errors.Is(err, nats.ErrPermissionViolation) {
			denied.Add(1)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// honestSampler starts a real sampler as identity id.
func (b *bus) honestSampler(t *testing.T, id string) {
	t.Helper()
	nc := b.connect(t, id, nil)
	w, err := worker.Start(nc, worker.Options{ID: id, Identity: id})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Stop() })
}

// rogue starts the attack client as identity id on its own connection.
func (b *bus) rogue(t *testing.T, id, instance string, answer attack.Answer) *attack.Client {
	t.Helper()
	c, err := attack.StartNamed(b.connect(t, id, nil), protocol.Subjects{Prefix: protocol.DefaultPrefix}, id, instance, answer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

// honestAnswer answers with the true quotients of p's work.
func (p *probeSet) honestAnswer(t *testing.T) attack.Answer {
	return func(c *attack.Client, wr *protocol.WorkRequest) {
		width := p.plan.Width()
		res := &protocol.Result{Version: protocol.Version, Run: wr.Run, Step: wr.Step, Lo: wr.Lo, Hi: wr.Hi, Token: wr.Token, Instance: c.Instance, Width: width,
			D: make([]float64, (wr.Hi-wr.Lo)*width)}
		if err := p.local.Probes(context.Background(), p.work(uint32(wr.Step)), wr.Lo, wr.Hi, func(j int, d []float64) error {
			copy(res.D[(j-wr.Lo)*width:], d)
			return nil
		}); err != nil {
			t.Error(err)
		}
		c.Send(res)
	}
}

// twoFaced answers its first batch honestly, then forges with fill.
func (p *probeSet) twoFaced(t *testing.T, fill func(*protocol.Result)) attack.Answer {
	var n atomic.Int64
	h, forge := p.honestAnswer(t), attack.Forged(p.plan.Width(), fill)
	return func(c *attack.Client, wr *protocol.WorkRequest) {
		if n.Add(1) == 1 {
			h(c, wr)
			return
		}
		forge(c, wr)
	}
}

func fillAll(v float64) func(*protocol.Result) {
	return func(r *protocol.Result) {
		for i := range r.D {
			r.D[i] = v
		}
	}
}

// waitUntil polls cond.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(time.Minute); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("gave up waiting for %s", what)
		}
	}
}

func TestAttackTable(t *testing.T) {
	for _, mk := range []func(*testing.T) *bus{deployBus, embeddedBus} {
		for _, row := range attackRows {
			b := mk(t)
			t.Run(b.name+"/"+row.name, func(t *testing.T) {
				p := newProbeSet(t, 41)
				var once sync.Once
				joined := func() { once.Do(func() { b.honestSampler(t, "sampler-1"); b.honestSampler(t, "sampler-2") }) }
				be := p.backend(t, b.connect(t, "", nil), natsbus.Options{Batch: row.batch, Verify: row.verify, VerifyKey: []byte("table"), Timeout: 2 * time.Second})
				check := row.attack(t, b, p, be, joined)
				var done atomic.Bool
				go func() {
					defer joined()
					for !done.Load() && !check.ready() {
						time.Sleep(time.Millisecond)
					}
				}()
				got := p.estimate(t, be, 3, row.probes)
				done.Store(true)
				p.same(t, row.name, got, p.estimate(t, p.local, 3, row.probes))
				a := got.Audit
				t.Logf("audit %+v; stats %+v", a, be.Stats())
				if row.quarantined != "" && a.Quarantines["sampler-3"] != row.quarantined {
					t.Errorf("quarantined %v, want sampler-3 for %s", a.Quarantines, row.quarantined)
				}
				if row.refused != "" && (a.Rejected[row.refused] == 0 || a.RefusedFrom["sampler-3"] == 0) {
					t.Errorf("refused %v from %v, want %s from sampler-3", a.Rejected, a.RefusedFrom, row.refused)
				}
				for _, id := range []string{"sampler-1", "sampler-2"} {
					if a.RefusedFrom[id] != 0 || a.Quarantines[id] != "" {
						t.Errorf("the honest %s was refused %d times, quarantined %q", id, a.RefusedFrom[id], a.Quarantines[id])
					}
				}
				if check.after != nil {
					check.after(t)
				}
			})
		}
	}
}

// rowCheck says when the honest samplers may join (the attack has had its
// chance) and what to check after the run.
type rowCheck struct {
	ready func() bool
	after func(t *testing.T)
}

var attackRows = []struct {
	name        string
	verify      float64
	batch       int
	probes      int
	quarantined string // the reason sampler-3 is quarantined for
	refused     string // a reason its messages are refused for
	attack      func(t *testing.T, b *bus, p *probeSet, be *natsbus.Backend, join func()) rowCheck
}{
	{
		// Every batch answered with NaN, by six connections each calling
		// itself another instance: one credential, one identity, struck
		// out after two batches.
		name: "NaN under six instance names", batch: 2, probes: 48, refused: "non_finite",
		attack: func(t *testing.T, b *bus, p *probeSet, be *natsbus.Backend, join func()) rowCheck {
			var clients []*attack.Client
			for i := range 6 {
				clients = append(clients, b.rogue(t, "sampler-3", fmt.Sprintf("fresh-%d", i), attack.Forged(p.plan.Width(), fillAll(math.NaN()))))
			}
			return rowCheck{ready: func() bool {
				var n int64
				for _, c := range clients {
					n += c.Answers.Load()
				}
				return n >= 2
			}}
		},
	},
	{
		// Honest first, then 1e150 under the now-trusted identity: refused
		// at the plausibility bound at any --verify.
		name: "honest, then 1e150 at verify 0.01", verify: 0.01, batch: 2, probes: 48, quarantined: "implausible", refused: "implausible",
		attack: func(t *testing.T, b *bus, p *probeSet, be *natsbus.Backend, join func()) rowCheck {
			r := b.rogue(t, "sampler-3", "r", p.twoFaced(t, fillAll(1e150)))
			return rowCheck{ready: func() bool { return r.Answers.Load() >= 2 }}
		},
	},
	{
		// Honest first, then plausible forgeries (0.5) at --verify 0.1: the
		// forger works alone until caught (with 0.1 a forged batch is
		// caught within 400 with certainty but 5e−19), and loses every
		// result it gave the estimate.
		name: "honest, then 0.5 at verify 0.1", verify: 0.1, batch: 1, probes: 400, quarantined: "mismatch", refused: "mismatch",
		attack: func(t *testing.T, b *bus, p *probeSet, be *natsbus.Backend, join func()) rowCheck {
			b.rogue(t, "sampler-3", "r", p.twoFaced(t, fillAll(0.5)))
			return rowCheck{ready: func() bool { return be.Audit().Quarantines["sampler-3"] != "" }}
		},
	},
	{
		// Claim an honest sampler's identity: pull, answer and report
		// under sampler-1's name. The server refuses every message; the
		// honest sampler is neither struck nor quarantined.
		name: "another's identity", batch: 2, probes: 48,
		attack: func(t *testing.T, b *bus, p *probeSet, be *natsbus.Backend, join func()) rowCheck {
			var denied atomic.Int64
			nc := b.connect(t, "sampler-3", &denied)
			c, err := attack.StartNamed(nc, protocol.Subjects{Prefix: protocol.DefaultPrefix}, "sampler-1", "impostor", attack.Forged(p.plan.Width(), fillAll(0.5)))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Stop)
			var codec protocol.Codec
			forged := codec.MarshalResult(nil, &protocol.Result{Version: protocol.Version, Run: "test", Step: 3, Lo: 0, Hi: 2, Token: 1, Instance: "x", Width: p.plan.Width(), D: make([]float64, 2*p.plan.Width())})
			nc.Publish("ntkbus.results.test.sampler-1", forged)
			nc.Publish("ntkbus.pull.test.sampler-1", nil)
			return rowCheck{ready: func() bool { return denied.Load() >= 1 }, after: func(t *testing.T) {
				if c.Taken.Load() != 0 {
					t.Errorf("the impostor got %d batches", c.Taken.Load())
				}
			}}
		},
	},
	{
		// Forge from the first batch, while two honest samplers join: the
		// forger is caught at once, and the run goes on with the others.
		name: "first to come, forging", verify: 0.05, batch: 2, probes: 48, quarantined: "mismatch", refused: "mismatch",
		attack: func(t *testing.T, b *bus, p *probeSet, be *natsbus.Backend, join func()) rowCheck {
			r := b.rogue(t, "sampler-3", "r", attack.Forged(p.plan.Width(), fillAll(0.5)))
			return rowCheck{ready: func() bool { return r.Taken.Load() >= 1 }}
		},
	},
	{
		// Refusing samplers of every kind beside the honest ones: errors on
		// every batch, silence, endless progress without an answer.
		name: "refusers", batch: 2, probes: 16,
		attack: func(t *testing.T, b *bus, p *probeSet, be *natsbus.Backend, join func()) rowCheck {
			b.rogue(t, "sampler-3", "err", func(c *attack.Client, wr *protocol.WorkRequest) { c.Fail(wr, protocol.CodeInternal) })
			b.rogue(t, "sampler-4", "mute", func(*attack.Client, *protocol.WorkRequest) {})
			b.rogue(t, "sampler-5", "stall", func(c *attack.Client, wr *protocol.WorkRequest) {
				go func() {
					for range 400 {
						c.Progress(wr, 1)
						select {
						case <-c.Stopping():
							return
						case <-time.After(time.Duration(wr.Beat) * time.Millisecond):
						}
					}
				}()
			})
			join()
			return rowCheck{ready: func() bool { return true }}
		},
	},
}
