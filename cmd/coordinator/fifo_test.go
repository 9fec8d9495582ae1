//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A FIFO where the coordinator reads a file (a snapshot, a run's
// config.json, its train.csv for the figures) is refused at once with one
// line naming it, and status 2 where it is the user's input: reading it
// would wait for a writer forever.
func TestFIFOsAreRefusedWithoutBlocking(t *testing.T) {
	root := t.TempDir()
	run := filepath.Join(root, "run")
	if code, _, e := runCmd(t, args(tinyRun, "--local", "--steps", "2", "--init-probes", "4", "--out", run)...); code != 0 {
		t.Fatal(e)
	}
	fifo := filepath.Join(root, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	copyRun := func(name, file string) string {
		dir := filepath.Join(root, name)
		if err := os.CopyFS(dir, os.DirFS(run)); err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(dir, file))
		if err := syscall.Mkfifo(filepath.Join(dir, file), 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"exact", "--snapshot", fifo}, 2},
		{[]string{"estimate", "--snapshot", fifo}, 2},
		{[]string{"train", "--init", fifo, "--local", "--out", filepath.Join(root, "x")}, 2},
		{[]string{"train", "--config", fifo, "--out", filepath.Join(root, "y")}, 2},
		{[]string{"train", "--resume", copyRun("config", "config.json"), "--steps", "4"}, 2},
		{[]string{"train", "--resume", copyRun("csv", "train.csv"), "--steps", "4"}, 2},
		{[]string{"plot", copyRun("plot", "config.json")}, 1},
	} {
		done := make(chan struct{})
		var code int
		var e string
		go func() { code, _, e = runCmd(t, tc.args...); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("%v blocks on a FIFO", tc.args)
		}
		if code != tc.code || !strings.Contains(e, "is not a regular file (a FIFO)") || strings.Count(strings.TrimSpace(e), "\n") > 0 {
			t.Errorf("%v: exit %d, %q", tc.args, code, e)
		}
	}
}
