package figures

import (
	"errors"
	"math"
	"path/filepath"
	"testing"
)

// Six panels of decaying spectra with fitted lines, in two rows: the
// image has the size asked for and shows something; an empty panel or a
// bad series is an error that names the panel.
func TestLinePanelsSpectra(t *testing.T) {
	var panels []LinePanel
	for p := 0; p < 6; p++ {
		var ss []Series
		for o, rate := range []float64{0.8, 1.0, 1.3} {
			var x, y []float64
			for i := 1; i <= 40; i++ {
				x = append(x, float64(i))
				y = append(y, math.Pow(10, -rate*float64(i)/(1+float64(p)/4))*(1+0.1*math.Sin(float64(i+o))))
			}
			ss = append(ss, Series{Name: []string{"u", "u_{x}", "u_{xx}"}[o], X: x, Y: y, Group: "g" + string(rune('a'+o))})
			ss = append(ss, Series{X: x[:20], Y: y[:20], Style: Dashed, Group: "g" + string(rune('a'+o))})
		}
		panels = append(panels, LinePanel{Title: "depth " + string(rune('1'+p%3)), XLabel: "index i", YLabel: "λ_{i}/λ_{1}", Series: ss})
	}
	path := filepath.Join(outDir(t), "linepanels.png")
	if err := LinePanels(path, panels, LinePanelsOptions{Title: "Spectra", Cols: 3, LogY: true}); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, path, 3*420, 2*360+titleHeight("Spectra"))

	bad := []LinePanel{panels[0], {Title: "empty", Series: []Series{{X: []float64{1, 2}, Y: []float64{-1, 0}}}}}
	err := LinePanels(filepath.Join(t.TempDir(), "x.png"), bad, LinePanelsOptions{LogY: true})
	if !errors.Is(err, ErrNoData) {
		t.Errorf("a panel with no positive value on a log axis: %v, want ErrNoData", err)
	}
	if err := LinePanels(filepath.Join(t.TempDir(), "y.png"), nil, LinePanelsOptions{}); !errors.Is(err, ErrNoData) {
		t.Errorf("no panels: %v", err)
	}
	if err := LinePanels(filepath.Join(t.TempDir(), "z.png"), []LinePanel{{Series: []Series{{X: []float64{1}, Y: nil}}}}, LinePanelsOptions{}); err == nil {
		t.Error("mismatched series lengths: no error")
	}
}
