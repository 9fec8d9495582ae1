package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Natural-gradient flags: bad values are one-line errors with status 2.
func TestNaturalGradientFlagErrors(t *testing.T) {
	dir := t.TempDir()
	base := []string{"train", "--problem", "poisson2d", "--layers", "2,4,1", "--points", "8,4", "--steps", "1", "--local"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--optimizer", "ngd", "--damping", "0"}, `--damping "0"`},
		{[]string{"--optimizer", "ngd", "--damping", "lots"}, `--damping "lots"`},
		{[]string{"--optimizer", "ngd", "--damping", "0.1", "--damping-start", "1"}, "--damping-start goes with --damping auto"},
		{[]string{"--optimizer", "ngd", "--solver", "lu"}, `solver "lu"`},
		{[]string{"--optimizer", "sngd", "--solver", "cg"}, "--solver: sngd"},
		{[]string{"--optimizer", "adam", "--line-search=false"}, "--line-search applies to --optimizer ngd or sngd"},
		{[]string{"--optimizer", "ngd", "--weights", "exact", "--shared-weight", "pde,top"}, `no block "top"`},
		{[]string{"--optimizer", "ngd", "--standardize", "sphere"}, `--standardize "sphere"`},
		// Priced before the points to standardize over are drawn.
		{[]string{"--standardize", "points", "--points", "200000000,4"}, "over the limit"},
		{[]string{"--optimizer", "ngd", "--max-memory", "1000"}, "(ngd: --solver cg needs no"},
	} {
		args := append(append(append([]string(nil), base...), tc.args...), "--out", filepath.Join(dir, strings.Join(tc.args, "_")))
		code, _, e := runCmd(t, args...)
		if code != 2 || !strings.Contains(e, tc.want) || strings.Count(strings.TrimSpace(e), "\n") > 0 {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and one line with %q", tc.args, code, e, tc.want)
		}
	}
}

// ngd and sngd runs from the command line: their defaults land in
// config.json (η = 1, automatic damping, the line search; sngd: Woodbury,
// 100 columns, exact quotients) and train.csv has their columns.
func TestTrainNaturalGradient(t *testing.T) {
	dir := t.TempDir()
	for _, opt := range []string{"ngd", "sngd"} {
		out := filepath.Join(dir, opt)
		code, _, e := runCmd(t, "train", "--problem", "poisson2d", "--layers", "2,4,1", "--points", "20,8", "--weights", "fixed",
			"--optimizer", opt, "--steps", "3", "--local", "--out", out, "--log-level", "error")
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", opt, code, e)
		}
		var rc struct {
			Train struct {
				StepProbes int `json:"step_probes"`
				Probe      struct {
					Quotient string `json:"quotient"`
				} `json:"probe"`
				Schedule struct {
					LR float64 `json:"lr"`
				} `json:"schedule"`
				Natural struct {
					DampingAuto bool   `json:"damping_auto"`
					LineSearch  bool   `json:"line_search"`
					Solver      string `json:"solver"`
				} `json:"natural"`
			} `json:"train"`
		}
		data, err := os.ReadFile(filepath.Join(out, "config.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &rc); err != nil {
			t.Fatal(err)
		}
		tr := rc.Train
		if tr.Schedule.LR != 1 || !tr.Natural.DampingAuto || !tr.Natural.LineSearch {
			t.Errorf("%s config: %+v", opt, tr)
		}
		if opt == "sngd" && (tr.Natural.Solver != "woodbury" || tr.StepProbes != 100 || tr.Probe.Quotient != "exact") {
			t.Errorf("sngd config: %+v", tr)
		}
		if opt == "ngd" && tr.Natural.Solver != "cholesky" {
			t.Errorf("ngd config: %+v", tr)
		}
		csv, _ := os.ReadFile(filepath.Join(out, "train.csv"))
		header := strings.SplitN(string(csv), "\n", 2)[0]
		for _, col := range []string{"error_l2", "mu", "eta", "solve_residual", "predicted_decrease", "actual_decrease", "step_rejected", "line_search_evals", "cg_iterations"} {
			if !strings.Contains(","+header+",", ","+col+",") {
				t.Errorf("%s train.csv header lacks %s: %s", opt, col, header)
			}
		}
	}
}

// The stop flags: the stall rule is on by default for ngd (config.json),
// --target-loss ends the run early with the reason in summary.json, and
// --resume may change the rules (they only end a run sooner) and extend a
// stopped run.
func TestTrainStopRules(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "run")
	code, _, e := runCmd(t, "train", "--problem", "poisson1d", "--layers", "1,20,1", "--points", "40,1,1", "--seed", "2",
		"--weights", "fixed", "--optimizer", "ngd", "--steps", "200", "--target-loss", "1e-4", "--out", out, "--log-level", "error", "--figures=false")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, e)
	}
	var sum struct {
		Steps      int    `json:"steps"`
		StopReason string `json:"stop_reason"`
	}
	read := func(name string, v any) {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, v); err != nil {
			t.Fatal(err)
		}
	}
	read("summary.json", &sum)
	if sum.StopReason != "target_loss" || sum.Steps >= 200 {
		t.Fatalf("summary: %+v; want stop_reason target_loss before step 200", sum)
	}
	var rc struct {
		Stop struct {
			TargetLoss    float64 `json:"target_loss"`
			StallSteps    int     `json:"stall_steps"`
			StallDecrease float64 `json:"stall_decrease"`
		} `json:"stop"`
	}
	read("config.json", &rc)
	if rc.Stop.TargetLoss != 1e-4 || rc.Stop.StallSteps != 100 || rc.Stop.StallDecrease != 0.1 {
		t.Errorf("config.json stop rules: %+v; want the target and ngd's default stall rule", rc.Stop)
	}
	// Extended without the target (and a shorter stall rule), it runs on.
	stopped := sum.Steps
	code, _, e = runCmd(t, "train", "--resume", out, "--steps", "400", "--target-loss", "0", "--stall-steps", "30", "--log-level", "error", "--figures=false")
	if code != 0 {
		t.Fatalf("resume: exit %d: %s", code, e)
	}
	read("summary.json", &sum)
	rc.Stop.TargetLoss = -1 // absent (omitted as 0) must read as 0
	read("config.json", &rc)
	if rc.Stop.TargetLoss > 0 || rc.Stop.StallSteps != 30 || sum.Steps <= stopped+30 || sum.StopReason == "target_loss" {
		t.Errorf("extended run: %+v, rules %+v; want it past step %d", sum, rc.Stop, stopped+30)
	}
	code, _, _ = runCmd(t, "train", "--resume", out, "--stall-steps", "-3", "--log-level", "error")
	if code != 2 {
		t.Errorf("--stall-steps -3: exit %d, want 2", code)
	}
}
