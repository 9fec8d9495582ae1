package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// estimate --estimator nystrom|xnystrace: the JSON names the estimator,
// the exact quotient by default, the sketch's rank and its eigenvalues
// (descending), and the numbers are the same bits with 1 and 2 workers
// and over an embedded NATS server.
func TestEstimateSketchJSON(t *testing.T) {
	dir := t.TempDir()
	snap := filepath.Join(dir, "w.json")
	if code, _, e := runCmd(t, "snapshot", "--problem", "wave", "--layers", "2,16,16,1", "--points", "8,8,4,4,4", "--out", snap); code != 0 {
		t.Fatal(e)
	}
	for _, estimator := range []string{"nystrom", "xnystrace"} {
		est := func(extra ...string) map[string]any {
			args := append([]string{"estimate", "--snapshot", snap, "--probes", "20", "--seed", "4", "--json", "--log-level", "error", "--estimator", estimator}, extra...)
			code, out, e := runCmd(t, args...)
			if code != 0 {
				t.Fatalf("%v: exit %d: %s", extra, code, e)
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(out), &m); err != nil {
				t.Fatal(err)
			}
			return m
		}
		one := est("--workers", "1")
		if one["estimator"] != estimator || one["quotient"] != "exact" || one["rank"] == nil {
			t.Errorf("%s: estimator %v, quotient %v, rank %v", estimator, one["estimator"], one["quotient"], one["rank"])
		}
		eig := one["eigenvalues"].([]any)
		if len(eig) != int(one["rank"].(float64)) {
			t.Errorf("%s: %d eigenvalues for rank %v", estimator, len(eig), one["rank"])
		}
		for i := 1; i < len(eig); i++ {
			if eig[i].(float64) > eig[i-1].(float64) {
				t.Errorf("%s: eigenvalues not descending at %d", estimator, i)
			}
		}
		for name, m := range map[string]map[string]any{
			"2 workers": est("--workers", "2"),
			"NATS":      est("--nats", "embedded", "--listen", "127.0.0.1:0", "--samplers", "3"),
		} {
			for _, k := range []string{"trace", "trace_se", "block_traces", "weights", "weights_se", "eigenvalues"} {
				if fmt.Sprint(one[k]) != fmt.Sprint(m[k]) {
					t.Errorf("%s, %s: %s %v, 1 worker %v", estimator, name, k, m[k], one[k])
				}
			}
		}
	}
}

func TestSketchBadInputExitsTwo(t *testing.T) {
	dir := t.TempDir()
	snap := filepath.Join(dir, "q.json")
	if code, _, e := runCmd(t, "snapshot", "--problem", "quadratic", "--out", snap); code != 0 {
		t.Fatal(e)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"estimate", "--snapshot", snap, "--estimator", "sketchy"}, `unknown estimator "sketchy"`},
		{[]string{"estimate", "--snapshot", snap, "--estimator", "nystrom", "--kind", "block"}, "needs gaussian or rademacher probes"},
		{[]string{"estimate", "--snapshot", snap, "--estimator", "xnystrace", "--kernel-out", filepath.Join(dir, "K.npy")}, "estimates traces only"},
		{[]string{"estimate", "--snapshot", snap, "--estimator", "nystrom", "--rel-error", "0.1"}, "drop --rel-error"},
		{[]string{"train", "--problem", "quadratic", "--estimator", "nystrom", "--kind", "param", "--steps", "1"}, "needs gaussian or rademacher probes"},
		{[]string{"study", "errors", "--problem", "quadratic", "--variants", "block:nystrom", "--N", "2,4", "--M", "2"}, "needs gaussian or rademacher probes"},
		{[]string{"study", "errors", "--problem", "quadratic", "--variants", "gaussian:xnystrace", "--N", "2,2000", "--M", "2"}, "keep N ≤ 1000"},
		{[]string{"estimate", "--snapshot", snap, "--estimator", "nystrom", "--probes", "20000"}, "keep N ≤ 4096"},
		{[]string{"estimate", "--snapshot", snap, "--estimator", "xnystrace", "--probes", "1000", "--max-memory", "1000000"}, "--max-memory"},
		{[]string{"train", "--problem", "quadratic", "--estimator", "xnystrace", "--probes", "1001", "--steps", "1"}, "keep N ≤ 1000"},
		{[]string{"estimate", "--snapshot", snap, "--step", "4294967296"}, "32-bit"},
		{[]string{"estimate", "--snapshot", snap, "--batch", "-3"}, "--batch -3"},
		{[]string{"estimate", "--snapshot", snap, "--rel-error", "NaN"}, "--rel-error NaN"},
		{[]string{"study", "errors", "--problem", "quadratic", "--N", "2", "--M", "4611686018427387904"}, "2^32 indices"},
	} {
		code, _, e := runCmd(t, tc.args...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", tc.args, code, e)
		}
		if !strings.Contains(e, tc.want) {
			t.Errorf("%v: stderr %q does not contain %q", tc.args, e, tc.want)
		}
	}
}
