package figures

import (
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg/draw"
)

// Matrix is one panel of Heatmaps: a titled n×n matrix, row-major
// (Data[i*n+j] is row i, column j), drawn with row 0 at the top as
// matplotlib's imshow does.
type Matrix struct {
	Title string
	Data  []float64
	// Diverging colours the panel blue–white–red, centred at 0, for
	// signed matrices such as differences; otherwise the sequential
	// viridis map is used.
	Diverging bool
}

// HeatmapOptions configures Heatmaps.
type HeatmapOptions struct {
	Size // default 540 px wide and 480 px high per panel
	// Title is drawn above all panels.
	Title string
	// Cols is the number of panels per row; 0 puts up to three panels in
	// a row and four in a 2×2 grid.
	Cols int
	// SharedRange gives all panels of the same palette (sequential or
	// diverging) one colour range, so that an exact kernel and its
	// estimates are comparable colour for colour.
	SharedRange bool
	// XLabel and YLabel name every panel's axes (e.g. "column j", "row i").
	XLabel, YLabel string
	// Range, when Range[0] < Range[1], is every panel's colour range
	// (values beyond it take the end colours): one reference matrix's range
	// keeps its structure visible beside noisy estimates.
	Range [2]float64
}

// Heatmaps writes a PNG of one or more square matrices side by side, each
// with its own colour bar (the NTK and its estimates: the paper's Figures 5
// and 7). NaN and infinite entries are drawn dark grey.
func Heatmaps(path string, panels []Matrix, opt HeatmapOptions) error {
	if len(panels) == 0 {
		return fmt.Errorf("figures: heatmaps %q: no panels", path)
	}
	cols := layout(len(panels), opt.Cols)
	rows := (len(panels) + cols - 1) / cols
	sz, err := opt.Size.resolve(540*cols, 480*rows+titleHeight(opt.Title))
	if err != nil {
		return fmt.Errorf("figures: heatmaps %q: %w", path, err)
	}
	sizes, ranges, err := heatRanges(panels, opt)
	if err != nil {
		return fmt.Errorf("figures: heatmaps %q: %w", path, err)
	}
	ps := make([]*panel, len(panels))
	for k, m := range panels {
		ps[k] = heatPanel(m, sizes[k], ranges[k], sz.DPI, opt.XLabel, opt.YLabel)
	}
	if err := writePNG(path, sz, func(c draw.Canvas) { drawPanels(c, opt.Title, ps, cols, sz.DPI) }); err != nil {
		return fmt.Errorf("figures: write heatmaps %q: %w", path, err)
	}
	return nil
}

// heatRanges returns each panel's matrix size and colour range: its own
// data's, the union over panels of its palette (SharedRange), or Range.
func heatRanges(panels []Matrix, opt HeatmapOptions) ([]int, []valueRange, error) {
	sizes := make([]int, len(panels))
	ranges := make([]valueRange, len(panels))
	for k, m := range panels {
		n := int(math.Round(math.Sqrt(float64(len(m.Data)))))
		if n*n != len(m.Data) || n == 0 {
			return nil, nil, fmt.Errorf("panel %d %q: %d values do not form a square matrix", k, m.Title, len(m.Data))
		}
		sizes[k] = n
		ranges[k] = emptyRange()
		for _, v := range m.Data {
			ranges[k].add(v)
		}
		if ranges[k].empty() {
			return nil, nil, fmt.Errorf("panel %d %q: %w", k, m.Title, ErrNoData)
		}
	}
	switch {
	case opt.Range[0] < opt.Range[1]:
		for k := range ranges {
			ranges[k] = valueRange{opt.Range[0], opt.Range[1]}
		}
	case opt.SharedRange:
		share(ranges, func(k int) bool { return panels[k].Diverging })
	}
	return sizes, ranges, nil
}

// share replaces each range by the union of the ranges with the same
// palette kind.
func share(ranges []valueRange, diverging func(k int) bool) {
	for _, kind := range []bool{false, true} {
		u := emptyRange()
		for k, r := range ranges {
			if diverging(k) == kind {
				u.add(r.lo)
				u.add(r.hi)
			}
		}
		for k := range ranges {
			if diverging(k) == kind {
				ranges[k] = u
			}
		}
	}
}

// titleHeight is the pixel height a figure title adds to default sizes.
func titleHeight(title string) int {
	if title == "" {
		return 0
	}
	return 50
}

// heatPanel builds the panel of an n×n matrix with data range r.
func heatPanel(m Matrix, n int, r valueRange, dpi int, xLabel, yLabel string) *panel {
	cr := r.colorRange(m.Diverging)
	cm := colormap{lut: sequentialLUT(), lo: cr.lo, hi: cr.hi}
	if m.Diverging {
		cm.lut = divergingLUT()
	}
	p := newPlot(m.Title, xLabel, yLabel)
	// Column j is centred at x = j, row i at y = −i, so row 0 is on top.
	half := 0.5
	imageAxes(&p.X, -half, float64(n)-half)
	imageAxes(&p.Y, -(float64(n) - half), half)
	p.X.Tick.Marker = linearTicks{integer: true}
	p.Y.Tick.Marker = plot.TickerFunc(func(lo, hi float64) []plot.Tick {
		ticks := linearTicks{integer: true}.Ticks(-hi, -lo)
		for i := range ticks {
			ticks[i].Value = -ticks[i].Value
		}
		return ticks
	})
	p.Add(&raster{
		dpi: dpi,
		x0:  -half, x1: float64(n) - half,
		y0: -(float64(n) - half), y1: half,
		color: func(x, y float64) color.RGBA {
			j := min(n-1, max(0, int(math.Floor(x+0.5))))
			i := min(n-1, max(0, int(math.Floor(-y+0.5))))
			return cm.at(m.Data[i*n+j])
		},
	})
	return &panel{p: p, aspect: 1, cmap: cm}
}
