package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ntkbus/model"
)

// train --init starts from the θ of a run's final.json (Adam, then ngd),
// keeps that θ in the new run's folder, and train --config reproduces a
// run from its folder alone, to the bit.
func TestInitAndConfig(t *testing.T) {
	root := t.TempDir()
	adam, ngd, again := filepath.Join(root, "adam"), filepath.Join(root, "ngd"), filepath.Join(root, "again")
	if code, _, e := runCmd(t, args(tinyRun, "--local", "--weights", "fixed", "--steps", "5", "--out", adam)...); code != 0 {
		t.Fatalf("adam: %s", e)
	}
	final := filepath.Join(adam, "final.json")
	code, out, e := runCmd(t, "train", "--init", final, "--local", "--weights", "fixed", "--optimizer", "ngd", "--steps", "3",
		"--figures=false", "--log-level", "error", "--out", ngd)
	if code != 0 {
		t.Fatalf("ngd from adam's θ: exit %d: %s", code, e)
	}
	if !strings.HasPrefix(out, "train: problem poisson1d, 3 steps, fixed weights, ngd (p = 97") {
		t.Errorf("ngd from adam's θ: %s", out)
	}
	a, err := model.ReadSnapshot(final)
	if err != nil {
		t.Fatal(err)
	}
	b, err := model.ReadSnapshot(filepath.Join(ngd, "init.json"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range a.Theta {
		if a.Theta[i] != b.Theta[i] {
			t.Fatalf("θ_0 of the ngd run differs from adam's final θ at %d", i)
		}
	}
	cfg, _ := os.ReadFile(filepath.Join(ngd, "config.json"))
	if !bytes.Contains(cfg, []byte(`"file": "init.json"`)) || !bytes.Contains(cfg, []byte(`"sha256": "`)) {
		t.Errorf("config.json does not name θ_0's file and checksum:\n%s", cfg)
	}

	// The run again from its config.json alone: the same bits.
	if code, _, e := runCmd(t, "train", "--config", filepath.Join(ngd, "config.json"), "--out", again, "--log-level", "error", "--figures=false"); code != 0 {
		t.Fatalf("--config: exit %d: %s", code, e)
	}
	for _, f := range []string{"train.csv", "summary.json", "final.json", "init.json"} {
		if x, y := withoutSeconds(t, filepath.Join(ngd, f)), withoutSeconds(t, filepath.Join(again, f)); x != y {
			t.Errorf("%s of the run from its config.json differs", f)
		}
	}

	// Bad input: one line, status 2, nothing made.
	changed := filepath.Join(root, "changed")
	os.CopyFS(changed, os.DirFS(ngd))
	data, _ := os.ReadFile(filepath.Join(changed, "init.json"))
	os.WriteFile(filepath.Join(changed, "init.json"), bytes.Replace(data, []byte("theta\":[0"), []byte("theta\":[1"), 1), 0o644)
	notSnap := filepath.Join(root, "x.json")
	os.WriteFile(notSnap, []byte(`{"problem":"poisson1d","theta":[1,2]}`), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--init", final, "--layers", "1,4,1"}, "holds a poisson1d network with layers [1,8,8,1]; the flags ask for [1,4,1]: drop --layers"},
		{[]string{"--init", final, "--problem", "wave"}, "drop --problem"},
		{[]string{"--init", notSnap}, "theta has 2 values"},
		{[]string{"--init", filepath.Join(root, "none.json")}, "no such file"},
		{[]string{"--init", final, "--standardize", "domain"}, "--standardize with --init"},
		{[]string{"--config", filepath.Join(ngd, "config.json"), "--lr", "0.5"}, "--lr with --config"},
		{[]string{"--config", filepath.Join(ngd, "config.json"), "--init", final}, "--init with --config"},
		{[]string{"--config", filepath.Join(changed, "config.json")}, "does not match the SHA-256"},
		{[]string{"--resume", ngd, "--init", final}, "--init and --config start a new run"},
	} {
		out := filepath.Join(root, "bad")
		code, _, e := runCmd(t, append(append([]string{"train"}, tc.args...), "--out", out, "--local")...)
		if code != 2 || !strings.Contains(e, tc.want) || strings.Count(strings.TrimSpace(e), "\n") > 0 {
			t.Errorf("%v: exit %d, %q; want 2 and one line with %q", tc.args, code, e, tc.want)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%v made %s", tc.args, out)
		}
	}
}
