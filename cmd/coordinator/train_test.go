package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"ntkbus/protocol"
)

// TestMain lets a test run the coordinator as a child process (the test
// binary itself), to send it real signals.
func TestMain(m *testing.M) {
	if os.Getenv("NTKBUS_TEST_COORDINATOR") == "1" {
		if d, err := time.ParseDuration(os.Getenv("NTKBUS_TEST_PROGRESS_EVERY")); err == nil {
			testProgressEvery = d
		}
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// tinyRun is a Poisson network small enough for a test run in well under
// a second (the figures are tested elsewhere).
var tinyRun = []string{"train", "--problem", "poisson1d", "--layers", "1,8,8,1", "--points", "8,1,1", "--figures=false", "--log-level", "error"}

func args(base []string, more ...string) []string {
	return append(append([]string(nil), base...), more...)
}

// withoutSeconds drops the wall-clock column of train.csv and the seconds
// of summary.json: everything else of a run is reproducible to the bit.
func withoutSeconds(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	switch filepath.Ext(path) {
	case ".csv":
		var b strings.Builder
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			b.WriteString(line[:strings.LastIndexByte(line, ',')] + "\n")
		}
		return b.String()
	case ".json":
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		delete(m, "seconds")
		out, _ := json.Marshal(m)
		return string(out)
	}
	return string(data)
}

// A misspelled flag is one line with the nearest flag and exit status 2,
// not the whole usage.
func TestFlagErrorsAreOneLine(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"train", "--stpes", "3"}, "unknown flag --stpes (did you mean --steps?)"},
		{[]string{"train", "--problme", "wave"}, "(did you mean --problem?)"},
		{[]string{"exact", "--snapshto", "x.json"}, "(did you mean --snapshot?)"},
		{[]string{"estimate", "--probs", "3"}, "(did you mean --probes?)"},
		{[]string{"study", "errors", "--heatmap", "10"}, "(did you mean --heatmaps?)"},
		{[]string{"train", "--zzzzzz"}, "unknown flag --zzzzzz;"},
		{[]string{"train", "--steps", "ten"}, `invalid value "ten" for flag --steps`},
		{[]string{"train", "--steps"}, "flag needs an argument: --steps"},
		{[]string{"trian"}, "unknown command \"trian\" (did you mean train?)"},
		{[]string{"study", "erors"}, "(did you mean errors?)"},
		{[]string{"train", "--problem", "wave", "extra"}, `unexpected argument "extra"`},
	} {
		code, out, e := runCmd(t, tc.args...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2", tc.args, code)
		}
		if !strings.Contains(e, tc.want) {
			t.Errorf("%v: stderr %q does not contain %q", tc.args, e, tc.want)
		}
		if n := strings.Count(strings.TrimSpace(e), "\n"); n > 0 || out != "" {
			t.Errorf("%v: %d lines on stderr, stdout %q: want one line on stderr", tc.args, n+1, out)
		}
	}
	if _, _, e := runCmd(t, "train", "--zzzzzz"); strings.Contains(e, "did you mean") {
		t.Errorf("a suggestion for a name close to nothing: %q", e)
	}
}

// Help is asked for, so it goes to stdout with status 0, for every command
// and study; version names the build.
func TestHelpAndVersion(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"help"}, "commands:"},
		{[]string{"--help"}, "commands:"},
		{[]string{"help", "train"}, "usage: coordinator train"},
		{[]string{"train", "-h"}, "-resume"},
		{[]string{"study", "-h"}, "errors"},
		{[]string{"help", "study"}, "throughput"},
		{[]string{"study", "errors", "-h"}, "usage: coordinator study errors"},
		{[]string{"help", "study", "errors"}, "usage: coordinator study errors"},
		{[]string{"exact", "--help"}, "-snapshot"},
		{[]string{"--version"}, "coordinator (ntkbus) "},
		{[]string{"version"}, fmt.Sprintf("protocol %d", protocol.Version)},
	} {
		code, out, e := runCmd(t, tc.args...)
		if code != 0 || !strings.Contains(out, tc.want) || e != "" {
			t.Errorf("%v: exit %d, stdout %.60q…, stderr %q; want 0 and %q on stdout", tc.args, code, out, e, tc.want)
		}
	}
	if code, _, e := runCmd(t); code != 2 || !strings.Contains(e, "usage") {
		t.Errorf("no command: exit %d, stderr %q", code, e)
	}
}

// Bad settings are refused before a run folder exists.
func TestBadSettingsMakeNoFolder(t *testing.T) {
	for _, extra := range [][]string{
		{"--steps", "0"},
		{"--steps", "-3"},
		{"--alpha", "0"},
		{"--error-every", "0"},
		{"--layers", "2,4611686018427387904,1"},
		{"--layers", "2,1000000,1"},
		{"--points", "50000000,1,1"},
		{"--spaced", "--spaced-gamma", "2"},
		{"--spaced", "--spaced-h0", "-1"},
		{"--error-grid", "1"},
		{"--error-grid", "2000000"},
		{"--decay-every", "-5"},
		{"--eigenvalues", "-1", "--weights", "exact"},
	} {
		dir := filepath.Join(t.TempDir(), "run")
		code, _, e := runCmd(t, args(args(tinyRun, "--local", "--out", dir), extra...)...)
		if code != 2 || strings.Count(strings.TrimSpace(e), "\n") > 0 {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line", extra, code, e)
		}
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("%v: the run folder was created", extra)
		}
	}
}

// A finished run resumed without --steps stays as it is; --steps N extends
// it, and the extended run is the run of N steps from the start, to the bit:
// with a decaying learning rate, Adam, the spaced rule, resampled points,
// exact weights logged, kept kernels and solution errors on a period that
// does not divide the first length.
func TestResumeAndExtend(t *testing.T) {
	root := t.TempDir()
	long, short := filepath.Join(root, "long"), filepath.Join(root, "short")
	settings := args(tinyRun, "--local", "--workers", "2", "--init-probes", "6", "--probes", "2", "--alpha", "0.3",
		"--decay", "0.5", "--decay-every", "3", "--spaced", "--resample", "true", "--exact-every", "4",
		"--kernel", "--error-every", "4", "--checkpoint-every", "3")
	if code, _, e := runCmd(t, args(settings, "--steps", "10", "--out", long)...); code != 0 {
		t.Fatalf("10 steps: exit %d: %s", code, e)
	}
	if code, _, e := runCmd(t, args(settings, "--steps", "6", "--out", short)...); code != 0 {
		t.Fatalf("6 steps: exit %d: %s", code, e)
	}

	// Finished: nothing changes, not even a byte.
	files := []string{"summary.json", "final.json", "train.csv", "checkpoint.gob", "config.json", "kernel_estimate_last.csv"}
	before := map[string][]byte{}
	for _, f := range files {
		var err error
		if before[f], err = os.ReadFile(filepath.Join(short, f)); err != nil {
			t.Fatal(err)
		}
	}
	code, out, e := runCmd(t, "train", "--resume", short, "--log-level", "error")
	if code != 0 || !strings.Contains(out, "is finished (6 steps") || !strings.Contains(out, "--steps N") {
		t.Fatalf("resume of a finished run: exit %d, stdout %q, stderr %q", code, out, e)
	}
	for _, f := range files {
		if after, err := os.ReadFile(filepath.Join(short, f)); err != nil || !bytes.Equal(after, before[f]) {
			t.Errorf("resuming the finished run changed %s", f)
		}
	}
	var sum map[string]any
	if err := json.Unmarshal(before["summary.json"], &sum); err != nil {
		t.Fatal(err)
	}
	if sum["loss"] == 0.0 || len(sum["weights"].(map[string]any)) != 3 {
		t.Fatalf("summary of the finished run: %s", before["summary.json"])
	}

	// Settings are in config.json; a resume cannot change them.
	if code, _, e := runCmd(t, "train", "--resume", short, "--lr", "1"); code != 2 || !strings.Contains(e, "--lr with --resume") {
		t.Errorf("--lr with --resume: exit %d, %q", code, e)
	}
	if code, _, e := runCmd(t, "train", "--resume", short, "--steps", "5"); code != 2 || !strings.Contains(e, "cannot be shortened") {
		t.Errorf("--steps below the checkpoint: exit %d, %q", code, e)
	}
	if code, _, e := runCmd(t, "train", "--resume", short, "--steps", "0"); code != 2 || !strings.Contains(e, "--steps 0") {
		t.Errorf("--steps 0 with --resume: exit %d, %q", code, e)
	}

	// Extended to 10 steps: the 10-step run, row for row and bit for bit.
	code, out, e = runCmd(t, "train", "--resume", short, "--steps", "10", "--log-level", "error")
	if code != 0 || !strings.Contains(out, "6 steps, now 10") {
		t.Fatalf("extension: exit %d, stdout %q, stderr %q", code, out, e)
	}
	for _, f := range []string{"train.csv", "summary.json", "final.json", "config.json", "kernel_estimate_last.csv", "kernel_exact_last.csv", "kernel_estimate_first.csv"} {
		if a, b := withoutSeconds(t, filepath.Join(long, f)), withoutSeconds(t, filepath.Join(short, f)); a != b {
			t.Errorf("%s of the extended run differs from the 10-step run's", f)
		}
	}
	rows := strings.Count(withoutSeconds(t, filepath.Join(short, "train.csv")), "\n")
	if rows != 11 {
		t.Errorf("train.csv of the extended run has %d lines, want a header and 10 rows", rows)
	}
}

// A checkpoint of another run (another seed) or a torn one is refused with
// one line and status 2, and a config.json of the old key style is named.
func TestResumeRefusesForeignFiles(t *testing.T) {
	root := t.TempDir()
	a, b := filepath.Join(root, "a"), filepath.Join(root, "b")
	for i, dir := range []string{a, b} {
		if code, _, e := runCmd(t, args(tinyRun, "--local", "--steps", "3", "--init-probes", "4", "--seed", fmt.Sprint(i+1), "--out", dir)...); code != 0 {
			t.Fatal(e)
		}
	}
	ckB, err := os.ReadFile(filepath.Join(b, "checkpoint.gob"))
	if err != nil {
		t.Fatal(err)
	}
	cfgA, err := os.ReadFile(filepath.Join(a, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, file string
		data       []byte
		want       string
	}{
		{"another run's checkpoint", "checkpoint.gob", ckB, "written for another configuration"},
		{"a torn checkpoint", "checkpoint.gob", ckB[:len(ckB)/2], "do not match their SHA-256"},
		{"an empty checkpoint", "checkpoint.gob", nil, "not a checkpoint of this version"},
		{"a flipped bit", "checkpoint.gob", flipped(ckB, len(ckB)/2), "do not match their SHA-256"},
		{"the old key style", "config.json", bytes.Replace(cfgA, []byte(`"init_probes"`), []byte(`"InitProbes"`), 1), `key style of an earlier version ("InitProbes")`},
		{"an unknown key", "config.json", bytes.Replace(cfgA, []byte(`"alpha"`), []byte(`"alpah"`), 1), `unknown field "alpah"`},
	} {
		dir := filepath.Join(root, strings.ReplaceAll(tc.name, " ", "-"))
		if err := os.CopyFS(dir, os.DirFS(a)); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, tc.file), tc.data, 0o644); err != nil {
			t.Fatal(err)
		}
		before := folderBytes(t, dir)
		code, _, e := runCmd(t, "train", "--resume", dir, "--steps", "5", "--log-level", "error")
		if code != 2 || !strings.Contains(e, tc.want) || strings.Count(strings.TrimSpace(e), "\n") > 0 {
			t.Errorf("%s: exit %d, stderr %q; want 2 and one line with %q", tc.name, code, e, tc.want)
		}
		if after := folderBytes(t, dir); after != before {
			t.Errorf("%s: the refused resume changed the run folder", tc.name)
		}
	}
}

// θ = [1e200, 1, 1] makes R(θ) overflow: exact and estimate say so, with
// the block and row, before any probe is drawn.
func TestNonFiniteResidualIsNamed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.json")
	if err := os.WriteFile(path, []byte(`{"problem":"quadratic","theta":[1e200,1,1],"blocks":[{"name":"data","points":[[0.5],[0.25]]}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range [][]string{
		{"exact", "--snapshot", path},
		{"estimate", "--snapshot", path, "--probes", "4"},
		{"estimate", "--snapshot", path, "--probes", "4", "--nats", "embedded", "--listen", "127.0.0.1:0", "--samplers", "1", "--log-level", "error"},
		{"study", "errors", "--snapshot", path, "--N", "2,4", "--M", "2", "--out", filepath.Join(t.TempDir(), "s")},
	} {
		code, out, e := runCmd(t, cmd...)
		if code != 2 || !strings.Contains(e, "R(θ) is not finite: block data, row 0 (point 0) is +Inf") {
			t.Errorf("%v: exit %d, stderr %q", cmd[:1], code, e)
		}
		// The progress line of probes computed (logged at the default
		// level, so the in-process estimate shows it when it happens).
		if strings.Contains(out+e, "probes: done") {
			t.Errorf("%v: probes were computed: %q", cmd[:1], e)
		}
	}
	if err := os.WriteFile(path, []byte(`{"problem":"wave","layers":[2,4611686018427387904,1],"theta":[1,2],"blocks":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, e := runCmd(t, "exact", "--snapshot", path); code != 2 || !strings.Contains(e, "more than any memory holds") || strings.Count(strings.TrimSpace(e), "\n") > 0 {
		t.Errorf("layers with 2^62 units: exit %d, %q", code, e)
	}
}

// estimate warns when a block's estimated trace is not positive, and only
// then: with two probes some seeds give a negative one.
func TestEstimateWarnsAboutNonPositiveTraces(t *testing.T) {
	snap := filepath.Join(t.TempDir(), "w.json")
	if code, _, e := runCmd(t, "snapshot", "--problem", "wave", "--layers", "2,8,8,1", "--points", "8,8,4,4,4", "--out", snap); code != 0 {
		t.Fatal(e)
	}
	negative := 0
	for seed := 1; seed <= 12; seed++ {
		code, out, e := runCmd(t, "estimate", "--snapshot", snap, "--probes", "2", "--seed", fmt.Sprint(seed), "--json", "--workers", "1", "--log-level", "error")
		if code != 0 {
			t.Fatal(e)
		}
		var rep struct {
			BlockTraces map[string]float64 `json:"block_traces"`
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatal(err)
		}
		var bad []string
		for name, v := range rep.BlockTraces {
			if !(v > 0) {
				bad = append(bad, name)
			}
		}
		// The table says it in a note (the log says it on stderr too).
		_, table, _ := runCmd(t, "estimate", "--snapshot", snap, "--probes", "2", "--seed", fmt.Sprint(seed), "--workers", "1", "--log-level", "error")
		warned := strings.Contains(table, "is not positive, so its weight means nothing") && strings.Contains(table, "--kind block")
		if warned != (len(bad) > 0) {
			t.Errorf("seed %d: traces %v, warning %v:\n%s", seed, rep.BlockTraces, warned, table)
		}
		for _, name := range bad {
			if !strings.Contains(table, name+" (") {
				t.Errorf("seed %d: the warning does not name block %s:\n%s", seed, name, table)
			}
		}
		if len(bad) > 0 {
			negative++
		}
	}
	if negative == 0 {
		t.Fatal("no seed gave a non-positive trace: the test checks nothing")
	}
}

// A study folder of another design is bad input (2), not a failure.
func TestStudyOfAnotherDesign(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	base := []string{"study", "errors", "--problem", "quadratic", "--N", "2,4", "--M", "2", "--out", dir, "--log-level", "error"}
	if code, _, e := runCmd(t, base...); code != 0 {
		t.Fatal(e)
	}
	code, _, e := runCmd(t, args(base, "--seed", "9")...)
	if code != 2 || !strings.Contains(e, "holds a study of another design") {
		t.Errorf("exit %d, %q", code, e)
	}
	if code, _, e := runCmd(t, base...); code != 0 {
		t.Errorf("the same command again: exit %d, %q", code, e)
	}
}

// child starts the coordinator as a process in dir and returns it with
// its stdout lines and its stderr.
func child(t *testing.T, dir string, a ...string) (*exec.Cmd, *bufio.Scanner, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], a...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NTKBUS_TEST_COORDINATOR=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, bufio.NewScanner(out), &stderr
}

// waitFor reads lines until one contains s, and returns everything read.
func waitFor(t *testing.T, sc *bufio.Scanner, s string) string {
	t.Helper()
	var all strings.Builder
	for sc.Scan() {
		all.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), s) {
			return all.String()
		}
	}
	t.Fatalf("the process ended without printing %q:\n%s", s, all.String())
	return ""
}

// rest reads the remaining lines.
func rest(sc *bufio.Scanner) string {
	var all strings.Builder
	for sc.Scan() {
		all.WriteString(sc.Text() + "\n")
	}
	return all.String()
}

// SIGINT stops train during its initial probes with status 130, a
// checkpoint and the command that resumes, and no warning from the
// in-process samplers; SIGTERM stops a study with 143 and the command
// (with the folder it chose) that resumes it.
func TestInterruptExitStatus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	dir := t.TempDir()
	run := filepath.Join(dir, "run")
	cmd, out, stderr := child(t, dir, args(tinyRun[:len(tinyRun)-2], "--steps", "5", "--init-probes", "3000000",
		"--samplers", "2", "--listen", "127.0.0.1:0", "--out", run, "--log-level", "warn")...)
	waitFor(t, out, "run folder:")
	cmd.Process.Signal(os.Interrupt)
	tail := rest(out)
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Errorf("train after SIGINT: exit %d, want 130\n%s%s", code, tail, stderr)
	}
	if !strings.Contains(tail, "interrupted at step 0; resume with: coordinator train --resume "+run) {
		t.Errorf("no resume command:\n%s", tail)
	}
	if e := stderr.String(); !strings.Contains(e, "interrupt: stopping after the work in hand") || strings.Contains(e, "not sent") || strings.Contains(e, "coordinator.sampler") {
		t.Errorf("stderr after SIGINT:\n%s", e)
	}
	if _, err := os.Stat(filepath.Join(run, "checkpoint.gob")); err != nil {
		t.Errorf("no checkpoint after SIGINT: %v", err)
	}

	cmd, out, stderr = child(t, dir, "study", "errors", "--problem", "quadratic", "--N", "10,100000", "--M", "1000", "--log-level", "error")
	head := waitFor(t, out, "study folder:")
	folder := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(head), "study folder:"))
	cmd.Process.Signal(syscall.SIGTERM)
	tail = rest(out)
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 143 {
		t.Errorf("study after SIGTERM: exit %d, want 143\n%s%s", code, tail, stderr)
	}
	want := "resume with: coordinator study errors --problem quadratic --N 10,100000 --M 1000 --log-level error --out " + folder
	if !strings.Contains(tail, want) {
		t.Errorf("the interrupt message does not give the command with the folder:\n%s\nwant %q", tail, want)
	}
}

// flipped returns data with one bit of byte i flipped.
func flipped(data []byte, i int) []byte {
	out := append([]byte(nil), data...)
	out[i] ^= 0x10
	return out
}

// folderBytes is every file of a folder, names and contents, as one string.
func folderBytes(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %d %x\n", e.Name(), len(data), data)
	}
	return b.String()
}
