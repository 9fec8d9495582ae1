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

	"ntkbus/protocol"
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
