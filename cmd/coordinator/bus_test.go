package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"ntkbus/coordinator/natsbus"
	"ntkbus/coordinator/natsbus/attack"
	"ntkbus/protocol"
	"ntkbus/sampler/worker"
)

// Bad bus flags exit 2 at once, with one line naming the problem: a
// malformed --nats URL (which nats.go would retry forever), a --verify
// fraction out of range or without samplers to check, an embedded server
// off loopback without TLS.
func TestBusFlagErrors(t *testing.T) {
	dir := t.TempDir()
	snap := filepath.Join(dir, "q.json")
	if code, _, e := runCmd(t, "snapshot", "--problem", "quadratic", "--out", snap); code != 0 {
		t.Fatal(e)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"estimate", "--snapshot", snap, "--nats", "nats//127.0.0.1:14222"}, `--nats "nats//127.0.0.1:14222": not a URL`},
		{[]string{"estimate", "--snapshot", snap, "--nats", "nats://127.0.0.1:14222,http://x:1"}, `scheme "http"`},
		{[]string{"estimate", "--snapshot", snap, "--nats", "embedded", "--verify", "1.5"}, "--verify 1.5"},
		{[]string{"estimate", "--snapshot", snap, "--verify", "0.1"}, "--verify checks the samplers"},
		{[]string{"estimate", "--snapshot", snap, "--nats", "embedded", "--listen", "0.0.0.0:0"}, "not a loopback address"},
		{[]string{"estimate", "--snapshot", snap, "--nats", "embedded", "--listen-tls-cert", "c.pem"}, "go together"},
		{[]string{"train", "--problem", "quadratic", "--out", filepath.Join(dir, "run"), "--nats", "nats//127.0.0.1:14222"}, "not a URL"},
		{[]string{"estimate", "--snapshot", snap, "--nats", "embedded", "--wait-samplers", "0s"}, "--wait-samplers"},
		{[]string{"estimate", "--snapshot", snap, "--nats", "embedded", "--timeout", "-1s"}, "--timeout"},
	} {
		start := time.Now()
		code, _, e := runCmd(t, tc.args...)
		if code != 2 || !strings.Contains(e, tc.want) || strings.Count(strings.TrimSpace(e), "\n") > 0 {
			t.Errorf("%v: exit %d after %v, stderr %q; want 2 and one line with %q", tc.args, code, time.Since(start), e, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "run")); err == nil {
		t.Error("train created its run folder before refusing the flags")
	}
}

// estimate --verify over the embedded bus: the report has the checks'
// fields, and the numbers are the in-process ones to the bit.
func TestEstimateVerifyReport(t *testing.T) {
	dir := t.TempDir()
	snap := filepath.Join(dir, "w.json")
	if code, _, e := runCmd(t, "snapshot", "--problem", "wave", "--layers", "2,16,16,1", "--points", "8,8,4,4,4", "--out", snap); code != 0 {
		t.Fatal(e)
	}
	est := func(extra ...string) (map[string]any, string) {
		args := append([]string{"estimate", "--snapshot", snap, "--probes", "40", "--seed", "4", "--json", "--log-level", "error"}, extra...)
		code, out, e := runCmd(t, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", extra, code, e)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatal(err)
		}
		return m, e
	}
	local, _ := est("--workers", "2")
	bus, _ := est("--nats", "embedded", "--listen", "127.0.0.1:0", "--samplers", "2", "--verify", "1", "--batch", "10")
	if local["trace"] != bus["trace"] || local["trace_se"] != bus["trace_se"] {
		t.Errorf("trace: local %v, NATS %v", local["trace"], bus["trace"])
	}
	for _, k := range []string{"rejected", "rejected_by_reason", "verified", "mismatches", "quarantined"} {
		if _, ok := bus[k]; !ok {
			t.Errorf("estimate --json lacks %q", k)
		}
	}
	// The samplers in this process are the coordinator's own: vouched
	// for, never checked.
	if q, _ := bus["quarantined"].(map[string]any); bus["verified"].(float64) != 0 || bus["mismatches"].(float64) != 0 || q == nil || len(q) != 0 {
		t.Errorf("verified %v, mismatches %v, quarantined %v: want no checks of in-process samplers", bus["verified"], bus["mismatches"], bus["quarantined"])
	}
	if local["verified"].(float64) != 0 || local["rejected"].(float64) != 0 {
		t.Errorf("in process: verified %v, rejected %v", local["verified"], local["rejected"])
	}
}

// train --verify: summary.json and train.csv report the checks and the
// refusals; the join command it prints names the join credential's seed
// file, written for its owner alone, and no secret.
func TestTrainReportsChecks(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	code, out, e := runCmd(t, "train", "--problem", "wave", "--layers", "2,12,12,1", "--points", "8,8,4,4,4",
		"--steps", "4", "--init-probes", "8", "--probes", "2", "--alpha", "0.5", "--verify", "1",
		"--listen", "127.0.0.1:0", "--samplers", "2", "--out", dir, "--log-level", "error")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, e)
	}
	if !strings.Contains(out, "sampler --nats nats://127.0.0.1:") || !strings.Contains(out, "--identity join") || !strings.Contains(out, "--nkey ") ||
		strings.Contains(strings.ToLower(out+e), "password") {
		t.Errorf("the join command: %s", out)
	}
	data, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var sum map[string]any
	if err := json.Unmarshal(data, &sum); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"rejected", "rejected_by_reason", "verified", "mismatches", "quarantined"} {
		if _, ok := sum[k]; !ok {
			t.Errorf("summary.json lacks %q", k)
		}
	}
	csv, _ := os.ReadFile(filepath.Join(dir, "train.csv"))
	header := strings.SplitN(string(csv), "\n", 2)[0]
	for _, col := range []string{"rejected", "verified", "mismatches", "quarantined"} {
		if !strings.Contains(","+header+",", ","+col+",") {
			t.Errorf("train.csv lacks the column %s: %s", col, header)
		}
	}
}

// With a server but no sampler, the coordinator says so and gives up after
// --wait-samplers.
func TestNoSamplersGivesUp(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	defer srv.Shutdown()
	if !srv.ReadyForConnections(5 * time.Second) {
		t.Fatal("server not ready")
	}
	dir := t.TempDir()
	snap := filepath.Join(dir, "q.json")
	if code, _, e := runCmd(t, "snapshot", "--problem", "quadratic", "--out", snap); code != 0 {
		t.Fatal(e)
	}
	code, _, e := runCmd(t, "estimate", "--snapshot", snap, "--probes", "4", "--nats", srv.ClientURL(), "--samplers", "0", "--wait-samplers", "1s")
	if code != 1 || !strings.Contains(e, "no sampler that may get work asked for it") || !strings.Contains(e, "1s (--wait-samplers)") {
		t.Errorf("exit %d, stderr %q", code, e)
	}
}

// The headline run on samplers slower than --timeout: every batch of the
// paper's wave network takes longer than 50 ms, and the run succeeds with
// every batch done once (no refusal, not even of a duplicate): samplers
// that report progress keep their batches, and this process vouches for
// its own.
func TestTrainSlowerThanTimeout(t *testing.T) {
	if raceEnabled {
		t.Skip("minutes under the race detector; natsbus's TestSlowSamplerKeepsItsBatch runs there")
	}
	dir := filepath.Join(t.TempDir(), "run")
	start := time.Now()
	code, _, e := runCmd(t, "train", "--problem", "wave", "--steps", "1", "--init-probes", "2", "--probes", "1",
		"--timeout", "50ms", "--listen", "127.0.0.1:0", "--samplers", "2", "--out", dir, "--log-level", "warn")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, e)
	}
	data, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var sum map[string]any
	if err := json.Unmarshal(data, &sum); err != nil {
		t.Fatal(err)
	}
	if sum["rejected"] != 0.0 {
		t.Errorf("summary: rejected %v, %v", sum["rejected"], sum["rejected_by_reason"])
	}
	t.Logf("%v", time.Since(start))
}

// estimate --json names the sampler identities it refused: here a forger
// (its own credential on a server with the deployment's permissions)
// answers with 1e150, is refused at the plausibility bound and quarantined,
// and the estimate is the in-process one to the bit, computed by the honest
// sampler that joins after the forger's first batch.
func TestEstimateNamesRefusedSamplers(t *testing.T) {
	dir := t.TempDir()
	snap := filepath.Join(dir, "w.json")
	if code, _, e := runCmd(t, "snapshot", "--problem", "wave", "--layers", "2,16,16,1", "--points", "8,8,4,4,4", "--out", snap); code != 0 {
		t.Fatal(e)
	}
	emb, err := natsbus.StartEmbedded(natsbus.EmbeddedOptions{Listen: "127.0.0.1:0", Samplers: []string{"honest-1", "forger"}})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Shutdown()
	seed := filepath.Join(dir, "coordinator.nk")
	if err := emb.Coordinator.WriteSeed(seed); err != nil {
		t.Fatal(err)
	}
	fc, err := emb.Connect(emb.Samplers["forger"], "forger")
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	forger, err := attack.Start(fc, protocol.Subjects{Prefix: protocol.DefaultPrefix}, "forger", attack.Forged(28, func(r *protocol.Result) {
		for i := range r.D {
			r.D[i] = 1e150
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer forger.Stop()
	go func() {
		for forger.Taken.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		nc, err := emb.Connect(emb.Samplers["honest-1"], "honest")
		if err != nil {
			t.Error(err)
			return
		}
		w, err := worker.Start(nc, worker.Options{ID: "h", Identity: "honest-1"})
		if err != nil {
			t.Error(err)
			return
		}
		t.Cleanup(func() { w.Stop(); nc.Close() })
	}()
	est := func(args ...string) map[string]any {
		args = append([]string{"estimate", "--snapshot", snap, "--probes", "40", "--seed", "4", "--json", "--log-level", "error"}, args...)
		code, out, e := runCmd(t, args...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, e)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	bus := est("--nats", emb.URL, "--nkey", seed, "--samplers", "0", "--batch", "8")
	local := est("--workers", "1")
	if bus["trace"] != local["trace"] {
		t.Errorf("trace %v, in process %v", bus["trace"], local["trace"])
	}
	q, _ := bus["quarantined"].(map[string]any)
	by, _ := bus["rejected_by_sampler"].(map[string]any)
	reasons, _ := bus["rejected_by_reason"].(map[string]any)
	if q["forger"] != "implausible" || len(q) != 1 || by["forger"] == nil || by["honest-1"] != nil || reasons["implausible"] == nil {
		t.Errorf("quarantined %v, rejected_by_sampler %v, rejected_by_reason %v", q, by, reasons)
	}
}
