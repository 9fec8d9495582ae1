package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Off a terminal, train is never silent: its first line comes before
// anything slow starts, and a ticker writes a progress line (with the
// elapsed time and the ETA) while the initial probes and a long step run,
// with no update from them. The ticker's period is shortened here.
func TestProgressTicksOffATerminal(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	dir := t.TempDir()
	out, e := childRun(t, "20ms", args(tinyRun[:len(tinyRun)-2], "--local", "--workers", "1", "--steps", "2",
		"--init-probes", "20000", "--probes", "40000", "--alpha", "0.5", "--out", filepath.Join(dir, "run"))...)
	if first, _, _ := strings.Cut(out, "\n"); first != "train: problem poisson1d, 2 steps, estimate weights, adam (p = 97, n = 10); 20000 initial probes, 40000 per step" {
		t.Errorf("first line %q", first)
	}
	// The initial probes' lines, and step 1's: the same count of steps
	// done, again and again, while its probes come in.
	if !regexp.MustCompile(`initial probes: done=\d+ of=20000 elapsed=\S+ eta=\d`).MatchString(e) {
		t.Errorf("no line of the initial probes with an ETA:\n%s", e)
	}
	if n := len(regexp.MustCompile(`train: done=1 of=2 elapsed=\S+ eta=\S+ status="step 1: probes \d+/40000"`).FindAllString(e, -1)); n < 2 {
		t.Errorf("%d ticker lines during step 1:\n%s", n, e)
	}
}

// estimate says after its first batch how long all of it will take.
func TestEstimateSaysHowLongAfterTheFirstBatch(t *testing.T) {
	snap := filepath.Join(t.TempDir(), "s.json")
	if code, _, e := runCmd(t, "snapshot", "--problem", "poisson1d", "--layers", "1,8,8,1", "--points", "8,1,1", "--out", snap); code != 0 {
		t.Fatal(e)
	}
	_, e := childRun(t, "", "estimate", "--snapshot", snap, "--probes", "64", "--batch", "8", "--workers", "1")
	if !regexp.MustCompile(`probes: done=8 of=64 elapsed=\S+ eta=\d\S*s `).MatchString(e) {
		t.Errorf("no ETA after the first batch:\n%s", e)
	}
}

// childRun runs the coordinator as a child process (its log goes to its
// own stderr), with the progress ticker's period every when not "".
func childRun(t *testing.T, every string, a ...string) (string, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], a...)
	cmd.Env = append(os.Environ(), "NTKBUS_TEST_COORDINATOR=1", "NTKBUS_TEST_PROGRESS_EVERY="+every)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %s", err, stderr.String())
	}
	return stdout.String(), stderr.String()
}
