package natsbus

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"ntkbus/protocol"
)

// maxInstances caps the sampler instances discovery tracks: more answers
// to one ping are ignored.
const maxInstances = 4096

// discovery finds the sampler instances by pinging the micro service, in
// rounds: a ping, then the answers that come within a window. It never
// blocks; its owner feeds it the answers (Answers) and closes each round.
type discovery struct {
	nc      *nats.Conn
	subject string
	inbox   string
	sub     *nats.Subscription
	answers chan *nats.Msg

	round   int
	open    bool
	started time.Time
	// lastSeen is the start of the last round each instance answered;
	// names are their "instance" metadata, for logs.
	lastSeen map[string]time.Time
	names    map[string]string
	// live are the instances that answered this round or the one before,
	// sorted; prev is the start of the round before this one.
	live   []string
	closed time.Time
	prev   time.Time
}

func newDiscovery(nc *nats.Conn) (*discovery, error) {
	subject, err := micro.ControlSubject(micro.PingVerb, protocol.ServiceName, "")
	if err != nil {
		return nil, err
	}
	d := &discovery{nc: nc, subject: subject, inbox: nc.NewInbox(), answers: make(chan *nats.Msg, maxInstances),
		lastSeen: map[string]time.Time{}, names: map[string]string{}}
	if d.sub, err = nc.ChanSubscribe(d.inbox+".*", d.answers); err != nil {
		return nil, fmt.Errorf("subscribe to discovery answers: %w", err)
	}
	return d, nil
}

// ping starts a round. Every round has its own reply subject: a server
// grants a responder one answer per request delivered, keyed by the reply
// subject, and counts a second request on the same subject against the
// first's grant.
func (d *discovery) ping() error {
	d.round++
	d.prev, d.started, d.open = d.started, time.Now(), true
	return d.nc.PublishRequest(d.subject, d.inbox+"."+strconv.Itoa(d.round), nil)
}

// add takes one answer; answers outside a round, malformed ones and ones
// beyond maxInstances are ignored.
func (d *discovery) add(m *nats.Msg) {
	if !d.open || len(m.Data) > 4096 {
		return
	}
	var p micro.Ping
	if json.Unmarshal(m.Data, &p) != nil || p.Name != protocol.ServiceName || protocol.ValidInstance(p.ID) != nil {
		return
	}
	if _, known := d.lastSeen[p.ID]; !known && len(d.lastSeen) >= maxInstances {
		return
	}
	d.lastSeen[p.ID] = d.started
	name := p.Metadata["instance"]
	if len(name) > 64 {
		name = name[:64]
	}
	d.names[p.ID] = name
}

// close ends the round: live are the instances that answered it or the
// round before (an instance on a loaded machine may miss one).
func (d *discovery) close() {
	d.open = false
	d.closed = time.Now()
	d.live = d.live[:0]
	for id, seen := range d.lastSeen {
		switch {
		case !seen.Before(d.prev):
			d.live = append(d.live, id)
		case d.started.Sub(seen) > time.Minute:
			delete(d.lastSeen, id)
			delete(d.names, id)
		}
	}
	slices.Sort(d.live)
}

// alive reports whether an instance has shown a sign of life (an answer
// to a ping, or at) since the round before the last one closed: what is
// not alive has left.
func (d *discovery) alive(id string, at time.Time) bool {
	seen := d.lastSeen[id]
	if at.After(seen) {
		seen = at
	}
	return !seen.Before(d.prev)
}

// name is an instance's name for logs: "name (id)".
func (d *discovery) name(id string) string {
	if n := d.names[id]; n != "" {
		return n + " (" + id + ")"
	}
	return id
}

func (d *discovery) stop() { d.sub.Unsubscribe() }
