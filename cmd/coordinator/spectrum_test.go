package main

import (
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// study spectrum at a small size: the table, the files and the figures;
// a 2-D operator asked for in 1-D is bad input.
func TestStudySpectrum(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	code, out, e := runCmd(t, "study", "spectrum", "--points", "30", "--widths", "8,12", "--depths", "1,2", "--operators-2d", "u,laplacian", "--out", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, e)
	}
	for _, want := range []string{"exp rate", "1-D  2×12", "laplacian", "spectrum.csv, decay.csv"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	f, err := os.Open(filepath.Join(dir, "decay.csv"))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	// 2 widths × 2 depths × (3 operators in 1-D + 2 in 2-D) curves, two models each.
	if len(recs) != 1+2*2*2*5 {
		t.Errorf("decay.csv has %d lines", len(recs))
	}
	for _, name := range []string{"spectrum.csv", "study.json", "spectrum.png", "decay.png"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Error(err)
		}
	}
	if code, _, e := runCmd(t, "study", "spectrum", "--operators-1d", "laplacian", "--out", t.TempDir()); code != 2 {
		t.Errorf("a 2-D operator in 1-D: exit %d (%s), want 2", code, e)
	}
}

func spectrumJSON(t *testing.T, args ...string) map[string]any {
	t.Helper()
	code, out, e := runCmd(t, append([]string{"spectrum", "--json", "--log-level", "error"}, args...)...)
	if code != 0 {
		t.Fatalf("spectrum %v: exit %d: %s", args, code, e)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("spectrum --json printed %q: %v", out, err)
	}
	return m
}

func floats(v any) []float64 {
	var out []float64
	for _, x := range v.([]any) {
		out = append(out, x.(float64))
	}
	return out
}

// spectrum on a small wave network (n = 27 < S): the Nyström sketch of
// more probes than residuals is K itself, so its eigenvalues are the dense
// K's to rounding; randomly pivoted Cholesky on the exact columns gives the
// same spectrum; the sketch over NATS is the same bits as in process; the
// shares of the trace add up; --out writes the files.
func TestSpectrumSketchAndExact(t *testing.T) {
	dir := t.TempDir()
	snap := filepath.Join(dir, "w.json")
	if code, _, e := runCmd(t, "snapshot", "--problem", "wave", "--layers", "2,12,10,1", "--points", "7,6,5,5,4", "--seed", "2", "--out", snap); code != 0 {
		t.Fatal(e)
	}
	out := filepath.Join(dir, "spec")
	both := spectrumJSON(t, "--snapshot", snap, "--probes", "40", "--exact", "--top", "12", "--workers", "2", "--out", out)
	sk, ex := both["sketch"].(map[string]any), both["exact"].(map[string]any)
	if ex["method"] != "dense" || sk["method"] != "nystrom" || sk["quotient"] != "exact" {
		t.Fatalf("methods %v, %v, quotient %v", ex["method"], sk["method"], sk["quotient"])
	}
	se, ee := floats(sk["eigenvalues"]), floats(ex["eigenvalues"])
	if len(se) != 12 || len(ee) != 12 {
		t.Fatalf("%d and %d eigenvalues, want --top 12", len(se), len(ee))
	}
	for i := range ee {
		if math.Abs(se[i]-ee[i]) > 1e-9*ee[0] {
			t.Errorf("eigenvalue %d: sketch %v, exact %v", i+1, se[i], ee[i])
		}
	}
	if k := both["leading_agreeing"].(float64); k < 12 {
		t.Errorf("only the leading %v eigenvalues agree within 1e-6", k)
	}
	tr := both["trace"].(float64)
	var shares float64
	for _, v := range both["block_shares"].(map[string]any) {
		shares += v.(float64)
	}
	if math.Abs(shares-1) > 1e-12 {
		t.Errorf("block shares add up to %v", shares)
	}
	ts := floats(ex["top_share"])
	if math.Abs(ts[0]-ee[0]/tr) > 1e-12 || ts[11] > 1+1e-12 || ts[11] < ts[0] {
		t.Errorf("top shares %v", ts)
	}
	if er := ex["effective_rank"].(float64); !(er >= 1 && er <= 27) {
		t.Errorf("effective rank %v", er)
	}
	for _, f := range []string{"spectrum.csv", "spectrum.png"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	f, err := os.Open(filepath.Join(out, "spectrum.csv"))
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := csv.NewReader(f).ReadAll()
	f.Close()
	if len(recs) != 1+27 || recs[0][0] != "index" {
		t.Errorf("spectrum.csv: %d lines, header %v", len(recs), recs[0])
	}

	rpc := spectrumJSON(t, "--snapshot", snap, "--probes", "0", "--exact", "--exact-method", "rpcholesky", "--block", "5", "--top", "12")
	re := floats(rpc["exact"].(map[string]any)["eigenvalues"])
	for i := range ee {
		if math.Abs(re[i]-ee[i]) > 1e-10*ee[0] {
			t.Errorf("eigenvalue %d: rpcholesky %v, dense %v", i+1, re[i], ee[i])
		}
	}
	if rpc["sketch"] != nil {
		t.Error("--probes 0 reported a sketch")
	}

	bus := spectrumJSON(t, "--snapshot", snap, "--probes", "40", "--top", "12", "--nats", "embedded", "--listen", "127.0.0.1:0", "--samplers", "2")
	be := floats(bus["sketch"].(map[string]any)["eigenvalues"])
	for i := range se {
		if math.Float64bits(be[i]) != math.Float64bits(se[i]) {
			t.Errorf("eigenvalue %d: NATS %v, in process %v", i+1, be[i], se[i])
		}
	}

	for _, args := range [][]string{
		{"spectrum"},
		{"spectrum", "--snapshot", snap, "--probes", "0"},
		{"spectrum", "--snapshot", snap, "--kind", "block"},
		{"spectrum", "--snapshot", snap, "--probes", "0", "--exact", "--exact-method", "dense", "--max-memory", "1000"},
		{"spectrum", "--snapshot", snap, "--probes", "0", "--exact", "--exact-method", "rpcholesky", "--max-memory", "1000"},
		{"spectrum", "--snapshot", snap, "--probes", "2", "--workers", "100000"},
		{"spectrum", "--snapshot", snap, "--probes", "5000"},
	} {
		if code, _, e := runCmd(t, args...); code != 2 {
			t.Errorf("%v: exit %d (%s), want 2", args, code, e)
		}
	}
}
