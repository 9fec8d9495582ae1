package figures

import (
	"errors"
	"math"
	"path/filepath"
	"testing"
)

// Two panels of the same runs, against steps and against time, decode as
// one PNG of the stated size; a panel without data is an error naming it.
func TestLinePanels(t *testing.T) {
	var steps, secs, fast, slow []float64
	for s := 0; s <= 200; s++ {
		x := float64(s)
		steps = append(steps, x)
		secs = append(secs, 0.3*x)
		fast = append(fast, math.Exp(-x/15)+1e-6)
		slow = append(slow, 1/(1+x))
	}
	path := filepath.Join(outDir(t), "panels.png")
	err := LinePanels(path, []LinePanel{
		{Series: []Series{{Name: "ngd", X: steps, Y: fast}, {Name: "adam", X: steps, Y: slow}}, Title: "Error against step", XLabel: "Step", YLabel: "Relative L² error", LogY: true},
		{Series: []Series{{Name: "ngd", X: secs, Y: fast}, {Name: "adam", X: steps, Y: slow}}, Title: "Error against time", XLabel: "Seconds", YLabel: "Relative L² error", LogX: true, LogY: true},
	}, Size{})
	if err != nil {
		t.Fatal(err)
	}
	checkPNG(t, path, 1680, 640)
	err = LinePanels(filepath.Join(t.TempDir(), "x.png"), []LinePanel{{Title: "empty", Series: []Series{{X: []float64{1}, Y: []float64{math.NaN()}}}}}, Size{})
	if !errors.Is(err, ErrNoData) {
		t.Errorf("a panel without data: %v, want ErrNoData", err)
	}
}
