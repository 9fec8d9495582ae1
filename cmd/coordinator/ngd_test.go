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
