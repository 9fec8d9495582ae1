package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"

	"ntkbus/cmd/internal/natsconn"
	"ntkbus/coordinator"
	"ntkbus/coordinator/natsbus"
	"ntkbus/model"
	"ntkbus/sampler"
	"ntkbus/sampler/worker"
)

// busFlags choose where probes are computed: goroutines in this process
// (--local), or samplers on NATS: an embedded server (--nats embedded) or a
// running cluster (--nats URL), with --samplers of them in this process.
type busFlags struct {
	nf       natsconn.Flags
	samplers int
	listen   string
	local    bool
	batch    int
	timeout  time.Duration
	run      string
	// connectWait bounds the wait for a server that is not up yet: a
	// cluster may start its coordinator before its servers.
	connectWait time.Duration
	// waitSamplers bounds the wait while no sampler answers.
	waitSamplers time.Duration
	// verify is the fraction of batches recomputed in this process.
	verify float64
	// The embedded server off loopback: TLS, or the user's word.
	listenCert, listenKey string
	listenInsecure        bool
}

func (b *busFlags) register(fs *flag.FlagSet, defaultNATS string, defaultSamplers int) {
	b.nf.Register(fs, defaultNATS, `NATS: "embedded" starts a server in this process; a URL joins a running cluster; "off" computes probes on goroutines (--workers)`)
	fs.IntVar(&b.samplers, "samplers", defaultSamplers, "sampler instances in this process on the NATS bus (0 leaves the work to external samplers)")
	fs.StringVar(&b.listen, "listen", "127.0.0.1:4222", "address of the embedded NATS server (a free port is taken if it is busy)")
	fs.BoolVar(&b.local, "local", false, `compute probes on goroutines in this process, without NATS (same as --nats off)`)
	fs.IntVar(&b.batch, "batch-size", 0, "probes per batch (0: sized by each sampler's measured speed, smaller towards the end of each step)")
	fs.DurationVar(&b.timeout, "timeout", 60*time.Second, "how long a sampler holding a batch may stay silent (no progress report) before the batch goes to another and the sampler gets a strike; a slow batch that reports progress is never cut short")
	fs.StringVar(&b.run, "run", "", "run id on the bus (default: from the output folder)")
	fs.DurationVar(&b.connectWait, "connect-wait", time.Minute, "how long to wait for the NATS server at --nats URL before giving up")
	fs.DurationVar(&b.waitSamplers, "wait-samplers", 5*time.Minute, "how long a step waits while no sampler asks for work, answers or advances, before giving up")
	fs.Float64Var(&b.verify, "verify", 0, "fraction of the batches of samplers in other processes recomputed here and compared bit for bit (and each sampler identity's first batch); a sampler that disagrees is quarantined and everything it gave the estimate is computed again (0: no checks)")
	fs.StringVar(&b.listenCert, "listen-tls-cert", "", "certificate of the embedded NATS server: samplers connect with TLS (needed for a --listen address off loopback)")
	fs.StringVar(&b.listenKey, "listen-tls-key", "", "key of --listen-tls-cert")
	fs.BoolVar(&b.listenInsecure, "listen-insecure", false, "let the embedded NATS server listen off loopback without TLS: its passwords and the probes cross the network in clear")
}

// check reports bad bus flags before anything starts.
func (b *busFlags) check() error {
	if !(b.verify >= 0 && b.verify <= 1) {
		return badInput("--verify %v: want a fraction from 0 to 1", b.verify)
	}
	if b.timeout <= 0 {
		return badInput("--timeout %v: want a positive duration", b.timeout)
	}
	if b.waitSamplers <= 0 {
		return badInput("--wait-samplers %v: want a positive duration", b.waitSamplers)
	}
	if !b.useNATS() {
		if b.verify > 0 {
			return badInput("--verify checks the samplers' answers on NATS; in process there is nothing to check: drop it, or give --nats")
		}
		return nil
	}
	if _, err := b.nf.Subjects(); err != nil {
		return inputError{err}
	}
	if b.nf.URL == "embedded" {
		if (b.listenCert == "") != (b.listenKey == "") {
			return badInput("--listen-tls-cert and --listen-tls-key go together")
		}
		if !natsbus.IsLoopback(b.listen) && b.listenCert == "" && !b.listenInsecure {
			return badInput("--listen %s is not a loopback address: samplers there would send the embedded server's passwords and every probe in clear; give --listen-tls-cert and --listen-tls-key, or --listen-insecure to accept that", b.listen)
		}
		return nil
	}
	if err := b.nf.ValidateURL(); err != nil {
		return inputError{err}
	}
	if _, err := b.nf.Identity("sampler"); err != nil {
		return inputError{err}
	}
	return nil
}

// bus is a started NATS backend and what it needs stopped.
type bus struct {
	backend *natsbus.Backend
	desc    string
	stop    []func()
}

func (b *bus) close() {
	for i := len(b.stop) - 1; i >= 0; i-- {
		b.stop[i]()
	}
}

// useNATS reports whether probes go over NATS.
func (b *busFlags) useNATS() bool {
	return !b.local && b.nf.URL != "off" && b.nf.URL != ""
}

var runIDChars = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// runID makes a valid run id from a hint (an output folder).
func runID(explicit, hint string) string {
	if explicit != "" {
		return explicit
	}
	id := runIDChars.ReplaceAllString(hint, "-")
	id = strings.Trim(id, "-")
	if len(id) > 48 {
		id = id[len(id)-48:]
	}
	return fmt.Sprintf("%s-%x", id, time.Now().UnixNano()&0xffffff)
}

// start connects (or starts an embedded server), starts the in-process
// samplers and the backend for the setup's probes.
func (b *busFlags) start(ctx context.Context, log hclog.Logger, out io.Writer, setup *model.Setup, settings sampler.Settings, width int, run string, opt model.Options) (*bus, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	subjects, _ := b.nf.Subjects()
	bs := &bus{}
	var (
		coordConn *nats.Conn
		dial      func(name string) (*nats.Conn, error) // the coordinator's connection
		// dialSampler connects in-process sampler i, under the identity it returns.
		dialSampler func(i int, name string) (*nats.Conn, string, error)
		inProcess   []string
		err         error
	)
	if b.nf.URL == "embedded" {
		listen := b.listen
		if isBusy(listen) {
			host, _, _ := net.SplitHostPort(listen)
			log.Info("embedded NATS address busy, taking a free port", "address", listen)
			listen = net.JoinHostPort(host, "0")
		}
		if !natsbus.IsLoopback(listen) && b.listenCert == "" {
			log.Warn("the embedded NATS server listens off loopback without TLS (--listen-insecure): the probes cross the network in clear", "listen", listen)
		}
		// One credential per sampler in this process, and one for samplers
		// that join from elsewhere.
		for i := 0; i < b.samplers; i++ {
			inProcess = append(inProcess, fmt.Sprintf("local-%d", i))
		}
		emb, err := natsbus.StartEmbedded(natsbus.EmbeddedOptions{Listen: listen, TLSCert: b.listenCert, TLSKey: b.listenKey, Subjects: subjects,
			Samplers: append(slices.Clone(inProcess), natsbus.JoinIdentity), Log: log})
		if err != nil {
			return nil, err
		}
		bs.stop = append(bs.stop, emb.Shutdown)
		// The join credential's seed goes to a file only its owner reads,
		// removed when the run ends.
		dir, err := os.MkdirTemp("", "ntkbus-join-")
		if err != nil {
			bs.close()
			return nil, fmt.Errorf("a folder for the join credential: %w", err)
		}
		bs.stop = append(bs.stop, func() { os.RemoveAll(dir) })
		seed := filepath.Join(dir, "join.nk")
		if err := emb.Samplers[natsbus.JoinIdentity].WriteSeed(seed); err != nil {
			bs.close()
			return nil, err
		}
		fmt.Fprintf(out, "embedded NATS server: %s (more samplers join with: %s)\n", emb.URL, emb.JoinCommand(natsbus.JoinIdentity, seed))
		dial = func(name string) (*nats.Conn, error) { return emb.Connect(emb.Coordinator, name) }
		dialSampler = func(i int, name string) (*nats.Conn, string, error) {
			id := inProcess[i]
			nc, err := emb.Connect(emb.Samplers[id], name)
			return nc, id, err
		}
		bs.desc = "nats, embedded at " + emb.URL
	} else {
		dial = func(name string) (*nats.Conn, error) { return b.nf.Connect(name, log.Named("nats")) }
		// Samplers in this process share the coordinator's credential and
		// identity, which its permissions allow and this process vouches for.
		identity, _ := b.nf.Identity(natsbus.CoordinatorUser)
		if b.samplers > 0 {
			inProcess = []string{identity}
		}
		dialSampler = func(_ int, name string) (*nats.Conn, string, error) {
			nc, err := dial(name)
			return nc, identity, err
		}
		bs.desc = "nats at " + b.nf.URL
	}
	if coordConn, err = dial("ntkbus-coordinator " + run); err != nil {
		bs.close()
		return nil, err
	}
	bs.stop = append(bs.stop, func() { drain(coordConn) })
	if err := waitConnected(ctx, coordConn, b.nf.URL, b.connectWait, log); err != nil {
		bs.close()
		return nil, err
	}
	for i := 0; i < b.samplers; i++ {
		id := fmt.Sprintf("local-%d", i)
		nc, identity, err := dialSampler(i, "ntkbus-sampler "+id)
		if err != nil {
			bs.close()
			return nil, err
		}
		w, err := worker.Start(nc, worker.Options{Subjects: subjects, ID: id, Identity: identity, Eval: opt, Log: log.Named("sampler").With("instance", id)})
		if err != nil {
			nc.Close()
			bs.close()
			return nil, err
		}
		// Abort and close, not Stop and drain: when the coordinator closes
		// the bus nobody reads what these samplers have in hand, and an
		// interrupted run need not wait for their probe to finish.
		bs.stop = append(bs.stop, func() { w.Abort(); nc.Close() })
	}
	be, err := natsbus.New(coordConn, natsbus.Options{
		Subjects: subjects, Run: run, Setup: setup, Probe: settings, Width: width,
		Batch: b.batch, Timeout: b.timeout, WaitSamplers: b.waitSamplers, Verify: b.verify, InProcess: inProcess, Eval: opt, Log: log,
		// Every result is bounded by what K can give before it is taken,
		// at any --verify.
		Check: coordinator.NewPlausibility(setup, settings, opt),
	})
	if err != nil {
		bs.close()
		return nil, err
	}
	bs.backend = be
	bs.stop = append(bs.stop, func() { be.Close() })
	bs.desc += fmt.Sprintf(", run %s, %d samplers in process", run, b.samplers)
	if b.verify > 0 {
		bs.desc += fmt.Sprintf(", verifying %g of the batches", b.verify)
	}
	return bs, nil
}

// waitConnected waits until nc is connected, logging every few seconds,
// and names the server and the last connection error if it never is.
func waitConnected(ctx context.Context, nc *nats.Conn, url string, wait time.Duration, log hclog.Logger) error {
	start := time.Now()
	next := start.Add(2 * time.Second)
	for !nc.IsConnected() {
		if nc.IsClosed() {
			return fmt.Errorf("NATS connection to %s closed: %v", url, nc.LastError())
		}
		now := time.Now()
		if now.Sub(start) > wait {
			why := ""
			if err := nc.LastError(); err != nil {
				why = fmt.Sprintf(" (last error: %v)", err)
			}
			return fmt.Errorf("no NATS server answered at %s within %s%s: start it, or check --nats and the credentials", url, wait, why)
		}
		if now.After(next) {
			log.Info("waiting for the NATS server", "url", url, "waited", now.Sub(start).Round(time.Second))
			next = now.Add(5 * time.Second)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// drain flushes what a connection holds and closes it, waiting up to 10 s.
func drain(nc *nats.Conn) {
	if nc.Drain() == nil {
		for end := time.Now().Add(10 * time.Second); !nc.IsClosed() && time.Now().Before(end); {
			time.Sleep(5 * time.Millisecond)
		}
	}
	nc.Close()
}

func isBusy(addr string) bool {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return true
	}
	l.Close()
	return false
}
