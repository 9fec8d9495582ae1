// Command sampler runs stateless ntkbus samplers: NATS micro service
// instances ("ntkbus-sampler") that pull batches of NTK probes from any
// coordinator that announces work, under the identity of their credential.
//
//	sampler --nats nats://127.0.0.1:4222 --nkey sampler-1.nk --identity sampler-1 --replicas 4
//
// Each replica has its own connection. Samplers start before the server is
// up and reconnect forever; SIGINT or SIGTERM stops taking work, finishes
// and answers what is in hand, and exits.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"

	"ntkbus/cmd/internal/buildinfo"
	"ntkbus/cmd/internal/natsconn"
	"ntkbus/model"
	"ntkbus/protocol"
	"ntkbus/sampler/worker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr))
}

// versionLine is what --version prints.
func versionLine() string {
	return buildinfo.Line("sampler")
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("sampler", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: sampler [flags]

Runs stateless ntkbus samplers: instances of the NATS micro service
"ntkbus-sampler" that, when idle, pull batches of NTK probes from any
coordinator that announces work, fetch the step's snapshot in chunks,
compute the probes (saying every few seconds that they are at it) and
publish their quotients. Everything a sampler publishes carries its
credential's identity, which the server's permissions tie to it: the
coordinator trusts, strikes and quarantines by that identity. Each replica
has its own connection and shares the identity. Samplers may start before
the server and reconnect forever; SIGINT or SIGTERM stops pulling, answers
the batch in hand, and exits.

  sampler --nats nats://host:4222 --nkey deploy/secrets/sampler-1.nk --identity sampler-1 --replicas 4

flags:
`)
		fs.PrintDefaults()
	}
	var nf natsconn.Flags
	nf.Register(fs, "nats://127.0.0.1:4222", "NATS server URLs, comma-separated")
	replicas := fs.Int("replicas", 1, "independent sampler instances in this process, each with its own connection")
	name := fs.String("name", "", "instance name prefix (default: host name)")
	fetch := fs.Duration("fetch-timeout", 30*time.Second, "how long a snapshot fetch waits without any chunk arriving")
	maxSnap := fs.Int("max-snapshot", protocol.DefaultMaxSnapshot, "bytes of the largest snapshot this sampler fetches")
	maxMem := fs.Int64("max-memory", model.DefaultMaxMemory, "bytes a snapshot's work may use (the evaluator its points and network need; an exact kernel)")
	level := fs.String("log-level", "info", "log level: trace, debug (every request), info, warn, error")
	jsonLog := fs.Bool("log-json", false, "log as JSON lines")
	version := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *version {
		fmt.Fprintln(stderr, versionLine())
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sampler: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	lvl := hclog.LevelFromString(*level)
	if lvl == hclog.NoLevel {
		fmt.Fprintf(stderr, "sampler: --log-level %q: want trace, debug, info, warn or error\n", *level)
		return 2
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "sampler", Level: lvl, Output: stderr, JSONFormat: *jsonLog})
	if *replicas < 1 {
		fmt.Fprintf(stderr, "sampler: --replicas %d: want at least 1\n", *replicas)
		return 2
	}
	if *maxSnap < protocol.MinChunk {
		fmt.Fprintf(stderr, "sampler: --max-snapshot %d: want at least %d bytes\n", *maxSnap, protocol.MinChunk)
		return 2
	}
	subjects, err := nf.Subjects()
	if err != nil {
		fmt.Fprintf(stderr, "sampler: --prefix: %v\n", err)
		return 2
	}
	if err := nf.ValidateURL(); err != nil {
		fmt.Fprintf(stderr, "sampler: %v\n", err)
		return 2
	}
	identity, err := nf.Identity(worker.DefaultIdentity)
	if err != nil {
		fmt.Fprintf(stderr, "sampler: %v\n", err)
		return 2
	}
	if *name == "" {
		*name, _ = os.Hostname()
	}
	var (
		conns   []*nats.Conn
		workers []*worker.Worker
	)
	for i := 0; i < *replicas; i++ {
		id := fmt.Sprintf("%s-%d", *name, i)
		wlog := log.Named(id)
		nc, err := nf.Connect("ntkbus-sampler "+id, wlog)
		if err != nil {
			log.Error("cannot connect", "error", err)
			return 2
		}
		w, err := worker.Start(nc, worker.Options{Subjects: subjects, ID: id, Identity: identity, FetchTimeout: *fetch, MaxSnapshot: *maxSnap, Eval: model.Options{MaxMemory: *maxMem}, Log: wlog})
		if err != nil {
			log.Error("cannot start sampler", "instance", id, "error", err)
			return 1
		}
		conns = append(conns, nc)
		workers = append(workers, w)
	}
	log.Info("samplers started", "replicas", *replicas, "nats", nf.URL, "identity", identity, "version", buildinfo.Version(), "blas", model.BLASBackend())
	if w := model.BLASWarning(); w != "" {
		log.Warn(w)
	}
	if len(conns) > 0 && !conns[0].IsConnected() {
		log.Warn("no NATS server answers yet; retrying in the background until one does", "nats", nf.URL)
	}
	<-ctx.Done()
	log.Info("stopping: finishing the work in hand", "replicas", len(workers))
	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func(w *worker.Worker, nc *nats.Conn) {
			defer wg.Done()
			w.Stop()
			// Drain flushes the answers in hand; without a server it cannot,
			// so give up after a while.
			if nc.Drain() == nil {
				for end := time.Now().Add(30 * time.Second); !nc.IsClosed() && time.Now().Before(end); {
					time.Sleep(10 * time.Millisecond)
				}
			}
			nc.Close()
		}(workers[i], conns[i])
	}
	wg.Wait()
	var served int64
	for _, w := range workers {
		served += w.Counts().Results
	}
	log.Info("stopped", "batches_answered", served)
	return 0
}
