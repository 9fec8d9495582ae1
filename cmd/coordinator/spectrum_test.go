package main

import (
	"encoding/csv"
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
