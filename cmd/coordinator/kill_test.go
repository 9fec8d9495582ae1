package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"ntkbus/coordinator/natsbus"
	"ntkbus/coordinator/natsbus/attack"
	"ntkbus/protocol"
	"ntkbus/sampler/worker"
)

// loggedStep returns the step of the last whole result record in a run's
// probe log and the number of result records, or -1 while it holds none.
func loggedStep(path string) (step, records int) {
	step, records, _ = logRecords(path)
	return step, records
}

// logRecords reads a run's probe log: the step of its last whole result
// record (-1: none), its result records and its retraction records.
func logRecords(path string) (step, results, retractions int) {
	data, err := os.ReadFile(path)
	if err != nil {
		return -1, 0, 0
	}
	nl := bytes.IndexByte(data, '\n')
	if nl < 0 {
		return -1, 0, 0
	}
	fields := strings.Fields(string(data[:nl]))
	width, _ := strconv.Atoi(fields[len(fields)-1])
	step = -1
	for off := nl + 1; off+13 <= len(data); {
		// step, j, n, sender; values (or a retraction's reason); sum.
		s, j, k := binary.LittleEndian.Uint32(data[off:]), binary.LittleEndian.Uint32(data[off+4:]), int(data[off+12])
		size := 13 + k + 8*width + 32
		if j == 0xffffffff {
			if off+13+k >= len(data) {
				break
			}
			size = 13 + k + 1 + int(data[off+13+k]) + 32
		}
		if off+size > len(data) {
			break
		}
		if j == 0xffffffff {
			retractions++
		} else {
			step, results = int(s), results+1
		}
		off += size
	}
	return step, results, retractions
}

// killWhen starts the coordinator with a, waits until its probe log shows
// ready, and kills it with SIGKILL: no handler runs, nothing is flushed.
func killWhen(t *testing.T, root, run string, a []string, ready func(step, records int) bool) {
	t.Helper()
	cmd, out, stderr := child(t, root, a...)
	exited := make(chan struct{})
	go func() { rest(out); close(exited) }()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if step, n := loggedStep(filepath.Join(run, "probes.log")); ready(step, n) {
			break
		}
		select {
		case <-exited:
			t.Fatalf("the run ended before the point to kill it at:\n%s", stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run did not reach the point to kill it at:\n%s", stderr)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-exited
	cmd.Wait()
	if _, err := os.Stat(filepath.Join(run, "summary.json")); err == nil {
		t.Fatal("the run finished before it was killed: the test checks nothing")
	}
}

// sameRun compares two run folders' results, to the bit but for the
// wall-clock seconds and, over NATS (transport), the counts of results the
// transport refused (a batch sent again under load answers twice).
func sameRun(t *testing.T, want, got string, transport bool) {
	t.Helper()
	for _, f := range []string{"train.csv", "summary.json", "final.json"} {
		a, b := withoutSeconds(t, filepath.Join(want, f)), withoutSeconds(t, filepath.Join(got, f))
		if transport {
			a, b = withoutAudit(t, a), withoutAudit(t, b)
		}
		if a == b {
			continue
		}
		al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
		for i := range min(len(al), len(bl)) {
			if al[i] != bl[i] {
				t.Errorf("%s of the killed and resumed run differs from the uninterrupted run's at line %d:\n%s\n%s", f, i+1, al[i], bl[i])
				break
			}
		}
	}
}

// withoutAudit drops the columns or keys of refused and verified results
// from train.csv or summary.json (as withoutSeconds returns them).
func withoutAudit(t *testing.T, s string) string {
	t.Helper()
	audit := map[string]bool{"rejected": true, "rejected_by_reason": true, "verified": true, "mismatches": true, "quarantined": true}
	if strings.HasPrefix(s, "{") {
		var m map[string]any
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatal(err)
		}
		for k := range audit {
			delete(m, k)
		}
		out, _ := json.Marshal(m)
		return string(out)
	}
	lines := strings.Split(strings.TrimSpace(s), "\n")
	header := strings.Split(lines[0], ",")
	var b strings.Builder
	for _, line := range lines {
		for i, cell := range strings.Split(line, ",") {
			if i < len(header) && !audit[header[i]] {
				b.WriteString(cell + ",")
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// A run killed with SIGKILL during its initial probes (over the embedded
// NATS server, the default) resumes with --resume alone: on NATS again,
// with the probes computed before the kill, and ends as the run that was
// never stopped, to the bit.
func TestKilledDuringInitialProbesResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	root := t.TempDir()
	full, killed := filepath.Join(root, "full"), filepath.Join(root, "killed")
	base := args(tinyRun, "--steps", "3", "--init-probes", "4000", "--probes", "2", "--alpha", "0.3",
		"--samplers", "2", "--listen", "127.0.0.1:0")
	if code, _, e := runCmd(t, args(base, "--out", full)...); code != 0 {
		t.Fatalf("uninterrupted run: exit %d: %s", code, e)
	}
	killWhen(t, root, killed, args(base, "--out", killed), func(step, n int) bool { return step == 0 && n >= 200 })
	for _, f := range []string{"config.json", "checkpoint.gob", "train.csv", "probes.log"} {
		if _, err := os.Stat(filepath.Join(killed, f)); err != nil {
			t.Fatalf("after kill -9: %v", err)
		}
	}
	_, kept := loggedStep(filepath.Join(killed, "probes.log"))
	code, out, e := runCmd(t, "train", "--resume", killed, "--listen", "127.0.0.1:0", "--log-level", "error")
	if code != 0 {
		t.Fatalf("resume: exit %d: %s", code, e)
	}
	if !strings.Contains(out, "resuming at step 0 with "+strconv.Itoa(kept)+" probes already computed") {
		t.Errorf("the resume does not say it keeps the %d probes:\n%s", kept, out)
	}
	if !strings.Contains(out, "probes on NATS embedded with 2 samplers in this process, as the run was started") || !strings.Contains(out, "embedded NATS server:") {
		t.Errorf("the resume does not compute on NATS as the run did:\n%s", out)
	}
	sameRun(t, full, killed, true)
}

// A --local run killed with SIGKILL in the middle of a step (its probes on
// in-process goroutines, logged as they come) resumes on goroutines, not on
// an embedded NATS server, and ends as the run that was never stopped.
func TestKilledDuringAStepResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	root := t.TempDir()
	full, killed := filepath.Join(root, "full"), filepath.Join(root, "killed")
	base := args(tinyRun, "--local", "--workers", "2", "--steps", "4", "--init-probes", "50", "--probes", "4000", "--alpha", "0.3",
		"--checkpoint-every", "3", "--resample", "true")
	if code, _, e := runCmd(t, args(base, "--out", full)...); code != 0 {
		t.Fatalf("uninterrupted run: exit %d: %s", code, e)
	}
	// Killed in step 2 (or, on a slow machine, in step 3): resumed from
	// the checkpoint at step 0 with the probes of steps 0, 1 and part of 2
	// from the log (or from the one at step 3 with part of step 3's).
	killWhen(t, root, killed, args(base, "--out", killed), func(step, n int) bool { return step >= 2 && n >= 100 })
	code, out, e := runCmd(t, "train", "--resume", killed, "--log-level", "error")
	if code != 0 {
		t.Fatalf("resume: exit %d: %s", code, e)
	}
	// (A kill between the checkpoint at step 3 and the log's truncation
	// leaves no probe of step 3 or later to use.)
	if !regexp.MustCompile(`resuming at step [03] with \d+ probes already computed|train: resuming \S+ at step 3 of 4`).MatchString(out) || !strings.Contains(out, "probes on 2 goroutines in this process, as the run was started") {
		t.Errorf("the resume does not start from a checkpoint with the logged probes, on goroutines:\n%s", out)
	}
	if strings.Contains(out, "NATS") {
		t.Errorf("a --local run resumed on NATS:\n%s", out)
	}
	sameRun(t, full, killed, false)
}

// Issue 21: a sampler credential that answers honestly, then forges within
// the plausibility bound in a training step and then beyond it, is caught
// and quarantined; the coordinator is killed with SIGKILL right after the
// retraction is in the probe log (the forger was its only sampler). The
// resume, with honest samplers, serves nothing the forger gave, keeps it
// out (it goes on forging within the bound, which no check here would
// catch), and ends as the fault-free run to the bit.
func TestKilledAfterARetractionResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	root := t.TempDir()
	emb, err := natsbus.StartEmbedded(natsbus.EmbeddedOptions{Listen: "127.0.0.1:0", Samplers: []string{"honest-1", "honest-2", "forger"}})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Shutdown()
	seed := filepath.Join(root, "coordinator.nk")
	if err := emb.Coordinator.WriteSeed(seed); err != nil {
		t.Fatal(err)
	}
	full, killed := filepath.Join(root, "full"), filepath.Join(root, "killed")
	base := args(tinyRun, "--steps", "4", "--init-probes", "40", "--probes", "12", "--alpha", "0.3", "--batch-size", "2")
	if code, _, e := runCmd(t, args(base, "--local", "--workers", "1", "--out", full)...); code != 0 {
		t.Fatalf("fault-free run: exit %d: %s", code, e)
	}
	fc, err := emb.Connect(emb.Samplers["forger"], "forger")
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	var mu sync.Mutex
	inStep1 := 0
	forger, err := attack.Start(fc, protocol.Subjects{Prefix: protocol.DefaultPrefix}, "forger", attack.Twisted(&attack.Computer{}, func(_ int, wr *protocol.WorkRequest, res *protocol.Result) {
		mu.Lock()
		defer mu.Unlock()
		if wr.Step == 0 {
			return
		}
		if wr.Step == 1 {
			inStep1++
		}
		for i := range res.D {
			res.D[i] *= 1.01
			if wr.Step == 1 && inStep1 == 3 {
				res.D[i] = 1e150
			}
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer forger.Stop()
	killWhen(t, root, killed, args(base, "--nats", emb.URL, "--nkey", seed, "--samplers", "0", "--out", killed), func(int, int) bool {
		_, _, n := logRecords(filepath.Join(killed, "probes.log"))
		return n > 0
	})
	if step, n, _ := logRecords(filepath.Join(killed, "probes.log")); step != 1 || n < 4 {
		t.Fatalf("the log holds %d results, the last of step %d: not the forger's of step 1", n, step)
	}
	for _, id := range []string{"honest-1", "honest-2"} {
		nc, err := emb.Connect(emb.Samplers[id], id)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		w, err := worker.Start(nc, worker.Options{ID: id, Identity: id})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
	}
	code, _, e := runCmd(t, "train", "--resume", killed, "--nats", emb.URL, "--nkey", seed, "--samplers", "0", "--log-level", "error")
	if code != 0 {
		t.Fatalf("resume: exit %d: %s", code, e)
	}
	sameRun(t, full, killed, true)
	if n := forger.Taken.Load(); n < 23 {
		t.Errorf("the forger took %d batches: not the attack the test is about", n)
	}
}
