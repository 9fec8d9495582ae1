package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"ntkbus/cmd/internal/buildinfo"
	"ntkbus/protocol"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// Samplers start before the server is up, register as micro service
// instances (one per replica) once it is, and exit cleanly on a signal.
func TestSamplersStartBeforeServerAndDrain(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)

	ctx, cancel := context.WithCancel(context.Background())
	var logs syncBuf
	done := make(chan int)
	go func() { done <- run(ctx, []string{"--nats", url, "--replicas", "3", "--name", "t"}, &logs) }()
	time.Sleep(300 * time.Millisecond) // the samplers are retrying now

	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	defer srv.Shutdown()
	if !srv.ReadyForConnections(5 * time.Second) {
		t.Fatal("server not ready")
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	subject, _ := micro.ControlSubject(micro.PingVerb, protocol.ServiceName, "")
	var ids map[string]bool
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		ids = ping(t, nc, subject)
		if len(ids) == 3 {
			break
		}
	}
	if len(ids) != 3 {
		t.Fatalf("%d sampler instances answer discovery, want 3\n%s", len(ids), logs.String())
	}
	// "nats micro stats" sees each instance's one endpoint, on its own
	// inbox, with the sampler's own counters as its data.
	stats, _ := micro.ControlSubject(micro.StatsVerb, protocol.ServiceName, "")
	m, err := nc.Request(stats, nil, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var st micro.Stats
	json.Unmarshal(m.Data, &st)
	var data map[string]any
	if len(st.Endpoints) == 1 {
		json.Unmarshal(st.Endpoints[0].Data, &data)
	}
	if len(st.Endpoints) != 1 || !strings.HasPrefix(st.Endpoints[0].Subject, "_INBOX_sampler.") ||
		data["rejected_by_reason"] == nil || data["pulls"] == nil {
		t.Errorf("stats %+v", st)
		for _, e := range st.Endpoints {
			t.Logf("endpoint %+v, data %s", *e, e.Data)
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d\n%s", code, logs.String())
		}
	case <-time.After(40 * time.Second):
		t.Fatal("samplers did not stop")
	}
	if !strings.Contains(logs.String(), "stopped") {
		t.Errorf("no stop message:\n%s", logs.String())
	}
}

func ping(t *testing.T, nc *nats.Conn, subject string) map[string]bool {
	inbox := nc.NewRespInbox()
	ch := make(chan *nats.Msg, 16)
	sub, _ := nc.ChanSubscribe(inbox, ch)
	defer sub.Unsubscribe()
	nc.PublishRequest(subject, inbox, nil)
	ids := map[string]bool{}
	timeout := time.After(300 * time.Millisecond)
	for {
		select {
		case m := <-ch:
			var p micro.Ping
			json.Unmarshal(m.Data, &p)
			ids[p.ID] = true
		case <-timeout:
			return ids
		}
	}
}

// Bad flags exit 2 at once with one line naming the problem; a malformed
// --nats URL is one of them (nats.go would retry "nats//host" forever).
func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--replicas", "0"},
		{"--prefix", "a.*"},
		{"--nats", "nats//127.0.0.1:14222"},
		{"--nats", "http://127.0.0.1:4222"},
		{"--nats", "nats://127.0.0.1:99999"},
		{"--nats", "nats://127.0.0.1:4222/path"},
		{"--identity", "a.b"},
		{"--log-level", "loud"},
		{"--max-snapshot", "10"},
	} {
		var logs syncBuf
		if code := run(context.Background(), args, &logs); code != 2 {
			t.Errorf("%v: exit %d", args, code)
		}
		if lines := strings.Count(strings.TrimSpace(logs.String()), "\n") + 1; lines != 1 {
			t.Errorf("%v: %d lines of error:\n%s", args, lines, logs.String())
		}
	}
	var logs syncBuf
	if code := run(context.Background(), []string{"--nats", "nats//127.0.0.1:14222"}, &logs); !strings.Contains(logs.String(), "nats//127.0.0.1:14222") {
		t.Errorf("exit %d, the error does not name the URL: %s", code, logs.String())
	}
}

// -h describes the command; --version prints one line.
func TestHelpAndVersion(t *testing.T) {
	var help syncBuf
	if code := run(context.Background(), []string{"-h"}, &help); code != 0 || !strings.Contains(help.String(), "stateless ntkbus samplers") || !strings.Contains(help.String(), "--replicas") {
		t.Errorf("-h: exit %d\n%s", code, help.String())
	}
	var ver syncBuf
	if code := run(context.Background(), []string{"--version"}, &ver); code != 0 || ver.String() != buildinfo.Line("sampler")+"\n" || strings.Count(ver.String(), "\n") != 1 {
		t.Errorf("--version: exit %d: %q", code, ver.String())
	}
}
