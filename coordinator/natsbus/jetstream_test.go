package natsbus

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"ntkbus/coordinator"
	"ntkbus/model"
	"ntkbus/sampler"
)

// Why batches are not on JetStream's work queue. A work-queue stream has
// one pull consumer that every sampler fetches from; to acknowledge a
// batch, or say it is still in progress, a sampler must publish on the
// consumer's acknowledgement subjects, and the server takes an
// acknowledgement by the stream sequence it names, from whoever sends it.
// Here a second client, which never received the batch, terminates the
// batch another client holds, guessing only the sequence number: the batch
// leaves the queue and is never delivered again, though its holder never
// answered. A sampler credential that may acknowledge its own batches can
// drop, reject or hold everyone's.
func TestJetStreamAcksAreNotConfinedToTheHolder(t *testing.T) {
	srv := jetStreamServer(t)
	nc := connectPlain(t, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "WORK", Subjects: []string{"work.>"}, Retention: jetstream.WorkQueuePolicy, Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "samplers", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := js.Publish(ctx, "work.run", []byte(fmt.Sprintf("batch %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	// The holder takes the first batch and works on it.
	holder, err := jetstream.New(connectPlain(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	hc, err := holder.Consumer(ctx, "WORK", "samplers")
	if err != nil {
		t.Fatal(err)
	}
	batch, err := hc.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var held jetstream.Msg
	for m := range batch.Messages() {
		held = m
	}
	if held == nil {
		t.Fatal("the holder got no batch")
	}
	meta, _ := held.Metadata()
	// Another client terminates it, naming only its sequence numbers.
	other := connectPlain(t, srv)
	if err := other.Publish(fmt.Sprintf("$JS.ACK.WORK.samplers.1.%d.%d.0.0", meta.Sequence.Stream, meta.Sequence.Consumer), []byte("+TERM")); err != nil {
		t.Fatal(err)
	}
	other.Flush()
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs == 1 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the batch was not dropped: %d messages", info.State.Msgs)
		}
	}
	// Past the holder's AckWait, the batch is not delivered again: only
	// the second batch is left.
	again, err := cons.Fetch(2, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for m := range again.Messages() {
		got = append(got, string(m.Data()))
		m.Ack()
	}
	if len(got) != 1 || got[0] != "batch 1" {
		t.Fatalf("after another client's +TERM the queue holds %q: the test's premise is wrong", got)
	}
}

func jetStreamServer(t testing.TB) *server.Server {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true,
		JetStream: true, JetStreamMaxMemory: 256 << 20, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	return srv
}

func connectPlain(t testing.TB, srv *server.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// serverMsgs is the messages a server received and sent so far.
func serverMsgs(t testing.TB, srv *server.Server) int64 {
	v, err := srv.Varz(nil)
	if err != nil {
		t.Fatal(err)
	}
	return v.InMsgs + v.OutMsgs
}

// Dispatch of batches of trivial work to 16 samplers, the bus being all
// there is: ntkbus's pull (quadratic probes, one per batch, through the
// real backend and samplers) against JetStream's work queue (a message per
// batch, fetched one at a time by 16 consumers, acknowledged, and a
// result published back). It reports batches per second and the messages
// the server carried per batch.
//
//	go test ./coordinator/natsbus -run '^$' -bench Dispatch16 -benchtime 3x
func BenchmarkDispatch16Pull(b *testing.B) {
	setup, _ := model.NewSetup(model.Config{Problem: "quadratic"})
	pts, _ := setup.DrawPoints(1, 0, nil, nil)
	s := sampler.Settings{Seed: 1}
	local, err := coordinator.NewLocal(setup, pts, s, 1, model.Options{})
	if err != nil {
		b.Fatal(err)
	}
	plan := local.Plan()
	c := newCluster(b)
	c.samplers(16)
	be, err := New(c.connect("coordinator"), Options{Run: "bench", Setup: setup, Probe: s, Width: plan.Width(), Batch: 1})
	if err != nil {
		b.Fatal(err)
	}
	theta := setup.InitTheta(1)
	r0 := make([]float64, plan.Layout().N)
	const batches = 2000
	run := func(i int) {
		w := &coordinator.Work{ID: uint64(i + 1), PointsID: 1, Step: uint32(i), Theta: theta, Points: pts}
		acc := coordinator.NewAccumulator(plan, uint32(i), r0, false)
		if err := be.Probes(context.Background(), w, 0, batches, acc.Add); err != nil {
			b.Fatal(err)
		}
	}
	run(0) // every sampler has the snapshot
	msgs := serverMsgs(b, c.srv)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		run(i + 1)
	}
	b.ReportMetric(float64(batches*b.N)/time.Since(start).Seconds(), "batches/s")
	b.ReportMetric(float64(serverMsgs(b, c.srv)-msgs)/float64(batches*b.N), "msgs/batch")
}

func BenchmarkDispatch16JetStream(b *testing.B) {
	srv := jetStreamServer(b)
	nc := connectPlain(b, srv)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "WORK", Subjects: []string{"work.>"}, Retention: jetstream.WorkQueuePolicy, Storage: jetstream.MemoryStorage})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "samplers", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second}); err != nil {
		b.Fatal(err)
	}
	results := make(chan *nats.Msg, 4096)
	if _, err := nc.ChanSubscribe("results.>", results); err != nil {
		b.Fatal(err)
	}
	const batches = 2000
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var handled atomic.Int64
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			snc := connectPlain(b, srv)
			sjs, _ := jetstream.New(snc)
			cons, err := sjs.Consumer(ctx, "WORK", "samplers")
			if err != nil {
				b.Error(err)
				return
			}
			for {
				select {
				case <-stop:
					return
				default:
				}
				mb, err := cons.Fetch(1, jetstream.FetchMaxWait(100*time.Millisecond))
				if err != nil {
					continue
				}
				for m := range mb.Messages() {
					snc.Publish(fmt.Sprintf("results.%d", i), m.Data())
					m.Ack()
					handled.Add(1)
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	round := func() {
		for j := range batches {
			if _, err := js.PublishAsync(fmt.Sprintf("work.%d", j%16), []byte("batch")); err != nil {
				b.Fatal(err)
			}
		}
		<-js.PublishAsyncComplete()
		for range batches {
			<-results
		}
	}
	round()
	msgs := serverMsgs(b, srv)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		round()
	}
	b.ReportMetric(float64(batches*b.N)/time.Since(start).Seconds(), "batches/s")
	b.ReportMetric(float64(serverMsgs(b, srv)-msgs)/float64(batches*b.N), "msgs/batch")
}
