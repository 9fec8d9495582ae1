// Command sampler runs stateless ntkbus samplers: NATS micro service
// instances ("ntkbus-sampler") in the samplers' queue group that compute NTK
// probes for whichever coordinator sends work.
//
//	sampler --nats nats://127.0.0.1:4222 --replicas 16
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

	"ntkbus/cmd/internal/natsconn"
	"ntkbus/model"
	"ntkbus/sampler/worker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr))
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("sampler", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var nf natsconn.Flags
	nf.Register(fs, "nats://127.0.0.1:4222", "NATS server URLs, comma-separated")
	replicas := fs.Int("replicas", 1, "independent sampler instances in this process, each with its own connection")
	name := fs.String("name", "", "instance name prefix (default: host name)")
	fetch := fs.Duration("fetch-timeout", 30*time.Second, "time to fetch one snapshot")
	maxMem := fs.Int64("max-memory", model.DefaultMaxMemory, "bytes an exact kernel may use")
	level := fs.String("log-level", "info", "log level: trace, debug, info, warn, error")
	jsonLog := fs.Bool("log-json", false, "log as JSON lines")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sampler: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "sampler", Level: hclog.LevelFromString(*level), Output: stderr, JSONFormat: *jsonLog})
	if *replicas < 1 {
		log.Error("--replicas must be at least 1")
		return 2
	}
	subjects, err := nf.Subjects()
	if err != nil {
		log.Error("bad subject prefix", "error", err)
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
		w, err := worker.Start(nc, worker.Options{Subjects: subjects, ID: id, FetchTimeout: *fetch, Eval: model.Options{MaxMemory: *maxMem}, Log: wlog})
		if err != nil {
			log.Error("cannot start sampler", "instance", id, "error", err)
			return 1
		}
		conns = append(conns, nc)
		workers = append(workers, w)
	}
	log.Info("samplers started", "replicas", *replicas, "nats", nf.URL, "blas", model.BLASBackend())
	if len(conns) > 0 && !conns[0].IsConnected() {
		log.Warn("no NATS server answers yet; retrying in the background until one does", "nats", nf.URL)
	}
	<-ctx.Done()
	log.Info("stopping: finishing the work in hand")
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
	log.Info("stopped")
	return 0
}
