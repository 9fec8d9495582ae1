package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ntkbus/model"
)

// A problem file trains as its built-in does, to the bit, and a run of it
// resumes from its folder alone: config.json holds the problem's text.
func TestTrainProblemFile(t *testing.T) {
	dir := t.TempDir()
	text, err := os.ReadFile("../../problems/poisson1d.toml")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "mine.toml")
	if err := os.WriteFile(file, text, 0o644); err != nil {
		t.Fatal(err)
	}
	flags := []string{"--layers", "1,8,8,1", "--points", "8,1,1", "--figures=false", "--log-level", "error", "--steps", "6", "--checkpoint-every", "3"}
	builtin, fromFile := filepath.Join(dir, "builtin"), filepath.Join(dir, "file")
	for _, c := range []struct{ problem, out string }{{"poisson1d", builtin}, {file, fromFile}} {
		if code, out, e := runCmd(t, args([]string{"train", "--problem", c.problem, "--out", c.out}, flags...)...); code != 0 {
			t.Fatalf("train --problem %s: exit %d\n%s\n%s", c.problem, code, out, e)
		}
	}
	// The audit columns (rejected, verified, mismatches, quarantined) count
	// late answers of the embedded bus, which depend on timing.
	if a, b := withoutAudit(t, withoutSeconds(t, filepath.Join(builtin, "train.csv"))), withoutAudit(t, withoutSeconds(t, filepath.Join(fromFile, "train.csv"))); a != b {
		t.Errorf("train.csv of the file differs from the built-in's:\n%s\n%s", b, a)
	}
	// Resume with the problem file gone.
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if code, out, e := runCmd(t, "train", "--resume", fromFile, "--steps", "9", "--log-level", "error", "--figures=false"); code != 0 {
		t.Fatalf("resume: exit %d\n%s\n%s", code, out, e)
	}
	data, err := os.ReadFile(filepath.Join(fromFile, "train.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(strings.TrimSpace(string(data)), "\n"); n != 9 {
		t.Errorf("train.csv has %d steps after the resume, want 9", n)
	}
}

// Mistakes in a problem file are bad input: exit status 2 and one line
// that names the file, the block and the position.
func TestProblemFileBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	text := "name = \"b\"\ncoordinates = [\"x\"]\noutputs = [\"u\"]\n[domain]\nx = [0.0, 1.0]\n[[block]]\nname = \"pde\"\non = \"interior\"\npoints = 4\nresidual = \"u_xxx\"\n"
	if err := os.WriteFile(bad, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"snapshot", "--problem", bad, "--out", filepath.Join(dir, "s.json")}, "bad.toml: block pde: residual at 1:1: u_xxx is a derivative of order 3"},
		{[]string{"snapshot", "--problem", filepath.Join(dir, "none.toml"), "--out", filepath.Join(dir, "s.json")}, "none.toml: no such file"},
		{[]string{"train", "--problem", "../../problems/qtensor.toml", "--params", "k=1", "--steps", "1"}, `no parameter "k" (it has L, a, c)`},
		{[]string{"train", "--problem", "poisson1d", "--reference", filepath.Join(dir, "none.csv"), "--steps", "1"}, "--reference: open"},
	} {
		code, _, e := runCmd(t, c.args...)
		if code != 2 || !strings.Contains(e, c.want) || strings.Count(strings.TrimSpace(e), "\n") > 0 {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and one line with %q", c.args, code, e, c.want)
		}
	}
}

// --reference measures a built-in problem's errors against data, at the
// data's points: summary.json's error_l2 is the relative L² error of the
// final network's predictions there.
func TestTrainWithReference(t *testing.T) {
	dir := t.TempDir()
	ref := filepath.Join(dir, "ref.csv")
	var b strings.Builder
	b.WriteString("u,x\n")
	for i := 0; i <= 10; i++ {
		x := float64(i) / 10
		fmt.Fprintf(&b, "%v,%v\n", math.Sin(4*math.Pi*x), x)
	}
	if err := os.WriteFile(ref, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "run")
	if code, o, e := runCmd(t, args(tinyRun, "--steps", "3", "--reference", ref, "--out", out)...); code != 0 {
		t.Fatalf("train: exit %d\n%s%s", code, o, e)
	}
	var sum struct {
		ErrorL2 *float64 `json:"error_l2"`
	}
	data, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &sum); err != nil || sum.ErrorL2 == nil {
		t.Fatalf("summary.json: %v, error_l2 %v", err, sum.ErrorL2)
	}
	pred := filepath.Join(dir, "pred.csv")
	if code, o, e := runCmd(t, "predict", "--snapshot", filepath.Join(out, "final.json"), "--points", ref, "--out", pred, "--log-level", "error"); code != 0 {
		t.Fatalf("predict: exit %d\n%s%s", code, o, e)
	}
	tab, err := model.ReadTable(pred)
	if err != nil {
		t.Fatal(err)
	}
	var num, den float64
	for i := 0; i < tab.Rows(); i++ {
		x, u := tab.Data[2*i], tab.Data[2*i+1]
		want := math.Sin(4 * math.Pi * x)
		num += (u - want) * (u - want)
		den += want * want
	}
	if got := math.Sqrt(num / den); math.Abs(got-*sum.ErrorL2) > 1e-12*got {
		t.Errorf("summary.json error_l2 %v, from the predictions at the reference's points %v", *sum.ErrorL2, got)
	}
}
