// Package attack is a hostile sampler for tests: a client that pulls work
// like a sampler, under whatever identity its subjects name, and answers
// each batch as it is told: forged, late, silent, with errors, or not at
// all. Tests of the bus, the commands and the deployment run the attacks
// of issues 13 and 21 with it against real servers.
package attack

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"ntkbus/model"
	"ntkbus/protocol"
	"ntkbus/sampler"
	"ntkbus/sampler/worker"
)

// Answer answers one batch.
type Answer func(c *Client, wr *protocol.WorkRequest)

// Client pulls work under identity ID: its pulls, chunk requests and
// reports go to subjects ending in ID, its answers come to _INBOX_<ID>.>.
// It asks whenever a run announces work, and every few milliseconds while
// it knows a run.
type Client struct {
	NC       *nats.Conn
	ID       string
	Instance string // the name it gives itself
	Subjects protocol.Subjects
	Taken    atomic.Int64 // batches received
	Answers  atomic.Int64 // results and errors sent

	mu    sync.Mutex
	codec protocol.Codec
	stop  chan struct{}
	done  chan struct{}
	subs  []*nats.Subscription
}

// Start runs a client on nc under identity id, answering with answer.
func Start(nc *nats.Conn, subjects protocol.Subjects, id string, answer Answer) (*Client, error) {
	return StartNamed(nc, subjects, id, "attack", answer)
}

// StartNamed is Start with the instance name the client gives itself in
// its pulls and results (a name, not an identity).
func StartNamed(nc *nats.Conn, subjects protocol.Subjects, id, instance string, answer Answer) (*Client, error) {
	c := &Client{NC: nc, ID: id, Instance: instance, Subjects: subjects, stop: make(chan struct{}), done: make(chan struct{})}
	runs := make(chan string, 16)
	var acodec protocol.Codec
	sub, err := nc.Subscribe(subjects.AnnounceAll(), func(m *nats.Msg) {
		var a protocol.Announce
		if acodec.UnmarshalAnnounce(m.Data, &a) == nil {
			select {
			case runs <- a.Run:
			default:
			}
		}
	})
	if err != nil {
		return nil, err
	}
	c.subs = append(c.subs, sub)
	replies := make(chan *nats.Msg, 16)
	inbox := protocol.Inbox(id) + ".attack" + nats.NewInbox()[len(nats.InboxPrefix):]
	rsub, err := nc.ChanSubscribe(inbox+".*", replies)
	if err != nil {
		sub.Unsubscribe()
		return nil, err
	}
	c.subs = append(c.subs, rsub)
	nc.Flush()
	go func() {
		defer close(c.done)
		run, n, busy := "", 0, false
		var codec protocol.Codec
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			// After a batch it asks again at once, as a sampler does;
			// after "none", at the next announcement or tick.
			if !busy {
				select {
				case <-c.stop:
					return
				case run = <-runs:
				case <-tick.C:
				}
			}
			busy = false
			if run == "" {
				continue
			}
			n++
			reply := fmt.Sprintf("%s.%d", inbox, n)
			nc.PublishRequest(subjects.PullFrom(run, id), reply, codec.MarshalPull(nil, &protocol.Pull{Version: protocol.Version, Run: run, Instance: instance}))
			var m *nats.Msg
			select {
			case m = <-replies:
			case <-time.After(5 * time.Second):
				continue
			case <-c.stop:
				return
			}
			var wr protocol.WorkRequest
			if len(m.Data) == 0 || codec.UnmarshalWorkRequest(m.Data, &wr) != nil {
				continue
			}
			c.Taken.Add(1)
			answer(c, &wr)
			busy = true
		}
	}()
	return c, nil
}

// Stop ends the client's pulling (not the connection).
func (c *Client) Stop() {
	select {
	case <-c.stop:
		return
	default:
	}
	close(c.stop)
	<-c.done
	for _, s := range c.subs {
		s.Unsubscribe()
	}
}

// Stopping is closed when Stop is called: answers that go on in the
// background (progress forever) end with it.
func (c *Client) Stopping() <-chan struct{} { return c.stop }

// Send publishes a result on the client's results subject.
func (c *Client) Send(res *protocol.Result) {
	c.mu.Lock()
	data := c.codec.MarshalResult(nil, res)
	c.mu.Unlock()
	c.NC.Publish(c.Subjects.ResultsFrom(res.Run, c.ID), data)
	c.Answers.Add(1)
}

// Progress reports done probes of wr.
func (c *Client) Progress(wr *protocol.WorkRequest, done int) {
	var codec protocol.Codec
	m := nats.NewMsg(c.Subjects.ResultsFrom(wr.Run, c.ID))
	m.Header.Set(protocol.HeaderKind, protocol.KindProgress)
	m.Data = codec.MarshalProgress(nil, &protocol.Progress{Version: protocol.Version, Run: wr.Run, Step: wr.Step, Token: wr.Token, Done: done})
	c.NC.PublishMsg(m)
}

// Fail answers wr with an error.
func (c *Client) Fail(wr *protocol.WorkRequest, code string) {
	var codec protocol.Codec
	m := nats.NewMsg(c.Subjects.ResultsFrom(wr.Run, c.ID))
	m.Header.Set(protocol.HeaderKind, protocol.KindError)
	m.Data = codec.MarshalSamplerError(nil, &protocol.SamplerError{Version: protocol.Version, Run: wr.Run, Step: wr.Step, Lo: wr.Lo, Hi: wr.Hi, Token: wr.Token, Instance: c.Instance, Code: code, Message: "no"})
	c.NC.PublishMsg(m)
	c.Answers.Add(1)
}

// Forged answers with a well-formed result: the right run, step, range,
// token and width, every value 1, then what fill says.
func Forged(width int, fill func(*protocol.Result)) Answer {
	return func(c *Client, wr *protocol.WorkRequest) {
		res := &protocol.Result{Version: protocol.Version, Run: wr.Run, Step: wr.Step, Lo: wr.Lo, Hi: wr.Hi, Token: wr.Token, Instance: c.Instance, Width: width,
			D: make([]float64, (wr.Hi-wr.Lo)*width), Seconds: 0.01}
		for i := range res.D {
			res.D[i] = 1
		}
		fill(res)
		c.Send(res)
	}
}

// Computer computes batches truly, as a sampler does: it fetches each
// step's snapshot from the coordinator (on the client's own inbox) and
// computes the probes. Wrapped by Twisted, it plays a sampler that answers
// honestly and lies when it chooses, at any step of a training run.
type Computer struct {
	mu     sync.Mutex
	run    string
	ref    protocol.SnapshotRef
	setup  *model.Setup
	plan   *sampler.Plan
	prober *sampler.Prober
}

// Compute returns the true result of wr.
func (h *Computer) Compute(c *Client, wr *protocol.WorkRequest) (*protocol.Result, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.prober == nil || h.run != wr.Run || h.ref != wr.Snap {
		if err := h.fetch(c, wr.Run, wr.Snap); err != nil {
			return nil, err
		}
	}
	width := h.plan.Width()
	res := &protocol.Result{Version: protocol.Version, Run: wr.Run, Step: wr.Step, Lo: wr.Lo, Hi: wr.Hi, Token: wr.Token, Instance: c.Instance, Width: width,
		D: make([]float64, (wr.Hi-wr.Lo)*width), Seconds: 0.01}
	for j := wr.Lo; j < wr.Hi; j++ {
		h.prober.Probe(uint32(j), res.D[(j-wr.Lo)*width:(j-wr.Lo+1)*width])
	}
	return res, nil
}

// fetch gets and decodes snapshot ref of run, one chunk at a time.
func (h *Computer) fetch(c *Client, run string, ref protocol.SnapshotRef) error {
	inbox := protocol.Inbox(c.ID) + ".computer" + nats.NewInbox()[len(nats.InboxPrefix):]
	sub, err := c.NC.SubscribeSync(inbox)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	var (
		codec protocol.Codec
		asm   protocol.Assembler
		chunk protocol.Chunk
		snap  protocol.Snapshot
	)
	asm.Start(run, ref)
	for i := 0; i < ref.Chunks; i++ {
		req := codec.MarshalChunkRequest(nil, &protocol.ChunkRequest{Version: protocol.Version, Run: run, Step: ref.Step, Index: i})
		if err := c.NC.PublishRequest(c.Subjects.SnapshotFrom(run, c.ID), inbox, req); err != nil {
			return err
		}
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			return fmt.Errorf("chunk %d of step %d: %w", i, ref.Step, err)
		}
		if e := m.Header.Get(protocol.HeaderError); e != "" {
			return fmt.Errorf("chunk %d of step %d: %s", i, ref.Step, e)
		}
		if err := codec.UnmarshalChunk(m.Data, &chunk); err != nil {
			return err
		}
		encoded, err := asm.Add(&chunk)
		if err != nil {
			return err
		}
		if encoded != nil {
			if err := codec.UnmarshalSnapshot(encoded, &snap); err != nil {
				return err
			}
		}
	}
	setup, err := model.NewSetup(worker.Config(snap.Problem))
	if err != nil {
		return err
	}
	settings, err := worker.Settings(snap.Probe)
	if err != nil {
		return err
	}
	pts, err := worker.Points(setup, &snap, nil)
	if err != nil {
		return err
	}
	ev, err := setup.NewEvaluator(pts, model.Options{})
	if err != nil {
		return err
	}
	if h.plan, err = sampler.NewPlan(settings, ev.Layout()); err != nil {
		return err
	}
	h.setup, h.prober = setup, sampler.NewProber(ev, h.plan)
	h.prober.SetBase(snap.Theta, uint32(snap.Step))
	h.run, h.ref = run, ref
	return nil
}

// Twisted answers each batch with its true result, changed by twist (n
// counts the batches answered, from 1; twist may leave the result as it
// is). A batch it cannot compute gets no answer.
func Twisted(h *Computer, twist func(n int, wr *protocol.WorkRequest, res *protocol.Result)) Answer {
	var n atomic.Int64
	return func(c *Client, wr *protocol.WorkRequest) {
		res, err := h.Compute(c, wr)
		if err != nil {
			return
		}
		twist(int(n.Add(1)), wr, res)
		c.Send(res)
	}
}
