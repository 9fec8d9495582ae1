package figures

import (
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Grid is a regular Nx×Ny grid of nodes spanning [XMin, XMax]×[YMin, YMax]:
// node (i, j) sits at x_i = XMin + i·(XMax−XMin)/(Nx−1) and likewise y_j, and
// its value is at index j·Nx + i. Row j = 0 is the bottom (y = YMin), as for
// u(x, t) with time upward.
type Grid struct {
	Nx, Ny                 int
	XMin, XMax, YMin, YMax float64
}

func (g Grid) check(values int) error {
	if g.Nx < 2 || g.Ny < 2 {
		return fmt.Errorf("grid %d×%d needs at least 2 nodes each way", g.Nx, g.Ny)
	}
	if !(g.XMin < g.XMax) || !(g.YMin < g.YMax) || !isFinite(g.XMax-g.XMin) || !isFinite(g.YMax-g.YMin) {
		return fmt.Errorf("extent [%g, %g]×[%g, %g] is empty or not finite", g.XMin, g.XMax, g.YMin, g.YMax)
	}
	if values != g.Nx*g.Ny {
		return fmt.Errorf("%d values for a %d×%d grid, want %d", values, g.Nx, g.Ny, g.Nx*g.Ny)
	}
	return nil
}

func (g Grid) x(i int) float64 { return g.XMin + float64(i)*(g.XMax-g.XMin)/float64(g.Nx-1) }
func (g Grid) y(j int) float64 { return g.YMin + float64(j)*(g.YMax-g.YMin)/float64(g.Ny-1) }

// Directors is a field of headless line segments on its own (usually
// coarser) grid, such as the eigenvector of a liquid-crystal Q-tensor: the
// segment at node k points along (U[k], V[k]), and its length is
// proportional to the vector's norm, the longest filling most of a grid
// cell. The sign of a vector does not show. NaN or zero vectors are skipped.
type Directors struct {
	Grid Grid
	U, V []float64
}

// FieldPanel is one panel of FieldMaps: a scalar on a regular grid, with
// optional contour lines and director segments on top.
type FieldPanel struct {
	Title string
	Grid  Grid
	Z     []float64 // Nx·Ny values, see Grid
	// Diverging colours the panel blue–white–red centred at 0, for errors.
	Diverging bool
	// Contours is the number of equally spaced contour levels inside the
	// colour range (0 for none).
	Contours int
	// Directors, if set, overlays director segments.
	Directors *Directors
}

// FieldOptions configures FieldMaps.
type FieldOptions struct {
	Size                  // default 520 px wide and 460 px high per panel
	Title, XLabel, YLabel string
	// Cols is the number of panels per row; 0 puts up to three panels in
	// a row and four in a 2×2 grid.
	Cols int
	// SharedRange gives all panels of the same palette (sequential or
	// diverging) one colour range, e.g. prediction and truth.
	SharedRange bool
	// EqualAspect draws one unit of x as long as one unit of y.
	EqualAspect bool
}

// FieldMaps writes a PNG of scalar fields on regular 2-D grids side by side,
// each with a colour bar: a PINN prediction u(x, t), the truth and the error
// (the paper's Figure 9), or with Directors a light-intensity map under the
// liquid-crystal director (Figure 10). Values are interpolated bilinearly
// between nodes; NaN and infinite values are drawn grey.
func FieldMaps(path string, panels []FieldPanel, opt FieldOptions) error {
	if len(panels) == 0 {
		return fmt.Errorf("figures: field maps %q: no panels", path)
	}
	cols := layout(len(panels), opt.Cols)
	rows := (len(panels) + cols - 1) / cols
	sz, err := opt.Size.resolve(520*cols, 460*rows+titleHeight(opt.Title))
	if err != nil {
		return fmt.Errorf("figures: field maps %q: %w", path, err)
	}
	ranges := make([]valueRange, len(panels))
	for k, f := range panels {
		if err := f.check(); err != nil {
			return fmt.Errorf("figures: field maps %q: panel %d %q: %w", path, k, f.Title, err)
		}
		ranges[k] = emptyRange()
		for _, v := range f.Z {
			ranges[k].add(v)
		}
		if ranges[k].empty() {
			return fmt.Errorf("figures: field maps %q: panel %d %q: %w", path, k, f.Title, ErrNoData)
		}
	}
	if opt.SharedRange {
		share(ranges, func(k int) bool { return panels[k].Diverging })
	}
	ps := make([]*panel, len(panels))
	for k, f := range panels {
		ps[k] = f.panel(ranges[k], opt, sz.DPI)
	}
	if err := writePNG(path, sz, func(c draw.Canvas) { drawPanels(c, opt.Title, ps, cols, sz.DPI) }); err != nil {
		return fmt.Errorf("figures: write field maps %q: %w", path, err)
	}
	return nil
}

func (f *FieldPanel) check() error {
	if err := f.Grid.check(len(f.Z)); err != nil {
		return err
	}
	if f.Contours < 0 {
		return fmt.Errorf("negative number of contours %d", f.Contours)
	}
	if d := f.Directors; d != nil {
		if len(d.U) != len(d.V) {
			return fmt.Errorf("directors: U has %d values but V has %d", len(d.U), len(d.V))
		}
		if err := d.Grid.check(len(d.U)); err != nil {
			return fmt.Errorf("directors: %w", err)
		}
	}
	return nil
}

// panel builds the plot of f with data range r.
func (f *FieldPanel) panel(r valueRange, opt FieldOptions, dpi int) *panel {
	cr := r.colorRange(f.Diverging)
	cm := colormap{lut: sequentialLUT(), lo: cr.lo, hi: cr.hi}
	if f.Diverging {
		cm.lut = divergingLUT()
	}
	g := f.Grid
	p := newPlot(f.Title, opt.XLabel, opt.YLabel)
	imageAxes(&p.X, g.XMin, g.XMax)
	imageAxes(&p.Y, g.YMin, g.YMax)
	p.X.Tick.Marker = linearTicks{}
	p.Y.Tick.Marker = linearTicks{}
	p.Add(&raster{
		dpi: dpi,
		x0:  g.XMin, x1: g.XMax, y0: g.YMin, y1: g.YMax,
		color: func(x, y float64) color.RGBA { return cm.at(bilinear(g, f.Z, x, y)) },
	})
	if f.Contours > 0 {
		// Wrapped to hide the contour's glyph boxes, which would pad the
		// axes of this panel differently from its neighbours.
		p.Add(plotOnly{contours(g, f.Z, cm, f.Contours, f.Diverging)})
	}
	if f.Directors != nil {
		p.Add(&directorPlotter{d: f.Directors})
	}
	pn := &panel{p: p, cmap: cm}
	if opt.EqualAspect {
		pn.aspect = (g.XMax - g.XMin) / (g.YMax - g.YMin)
	}
	return pn
}

// bilinear interpolates z at (x, y). A cell with a non-finite corner takes
// the value of its nearest node, so missing values stay local.
func bilinear(g Grid, z []float64, x, y float64) float64 {
	fx := (x - g.XMin) / (g.XMax - g.XMin) * float64(g.Nx-1)
	fy := (y - g.YMin) / (g.YMax - g.YMin) * float64(g.Ny-1)
	i := min(g.Nx-2, max(0, int(math.Floor(fx))))
	j := min(g.Ny-2, max(0, int(math.Floor(fy))))
	tx := min(1, max(0, fx-float64(i)))
	ty := min(1, max(0, fy-float64(j)))
	z00, z10 := z[j*g.Nx+i], z[j*g.Nx+i+1]
	z01, z11 := z[(j+1)*g.Nx+i], z[(j+1)*g.Nx+i+1]
	v := (1-ty)*((1-tx)*z00+tx*z10) + ty*((1-tx)*z01+tx*z11)
	if isFinite(v) {
		return v
	}
	ni, nj := i+int(math.Round(tx)), j+int(math.Round(ty))
	return z[nj*g.Nx+ni]
}

// gridXYZ adapts a Grid and its values to plotter.GridXYZ.
type gridXYZ struct {
	g Grid
	z []float64
}

func (q gridXYZ) Dims() (c, r int)   { return q.g.Nx, q.g.Ny }
func (q gridXYZ) Z(c, r int) float64 { return q.z[r*q.g.Nx+c] }
func (q gridXYZ) X(c int) float64    { return q.g.x(c) }
func (q gridXYZ) Y(r int) float64    { return q.g.y(r) }

// contours returns n equally spaced contour levels strictly inside the
// colour range, as thin dark lines; for a diverging map negative levels
// are dashed. Non-finite values are replaced by the colour-range midpoint
// so they cannot break the contour tracer.
func contours(g Grid, z []float64, cm colormap, n int, diverging bool) *plotter.Contour {
	clean := make([]float64, len(z))
	for k, v := range z {
		if !isFinite(v) {
			v = (cm.lo + cm.hi) / 2
		}
		clean[k] = v
	}
	levels := make([]float64, n)
	styles := make([]draw.LineStyle, n)
	for k := range levels {
		levels[k] = cm.lo + float64(k+1)/float64(n+1)*(cm.hi-cm.lo)
		styles[k] = draw.LineStyle{Color: color.NRGBA{0, 0, 0, 150}, Width: 0.7}
		if diverging && levels[k] < 0 {
			styles[k].Dashes = []vg.Length{3, 2}
		}
	}
	c := plotter.NewContour(gridXYZ{g, clean}, levels, nil)
	c.LineStyles = styles
	// Draw every level even if it lies outside the data range.
	c.Min, c.Max = math.Inf(-1), math.Inf(1)
	return c
}

// plotOnly exposes only the Plot method of a plotter.
type plotOnly struct{ plot.Plotter }

// directorPlotter draws Directors as headless segments centred on their
// nodes, white-haloed so they read on any colour.
type directorPlotter struct{ d *Directors }

func (dp *directorPlotter) Plot(c draw.Canvas, p *plot.Plot) {
	d := dp.d
	g := d.Grid
	trX, trY := p.Transforms(&c)
	// Canvas lengths per data unit, and the node spacing on the canvas.
	kx := float64(trX(g.XMax)-trX(g.XMin)) / (g.XMax - g.XMin)
	ky := float64(trY(g.YMax)-trY(g.YMin)) / (g.YMax - g.YMin)
	cell := math.Min(kx*(g.XMax-g.XMin)/float64(g.Nx-1), ky*(g.YMax-g.YMin)/float64(g.Ny-1))
	longest := 0.0
	for k := range d.U {
		if m := math.Hypot(d.U[k], d.V[k]); isFinite(m) {
			longest = math.Max(longest, m)
		}
	}
	if longest == 0 {
		return
	}
	var segs [][]vg.Point
	for j := range g.Ny {
		for i := range g.Nx {
			u, v := d.U[j*g.Nx+i], d.V[j*g.Nx+i]
			m := math.Hypot(u, v)
			if !isFinite(m) || m == 0 {
				continue
			}
			cx, cy := trX(g.x(i)), trY(g.y(j))
			// Direction on the canvas, so angles are right for any aspect.
			dx, dy := u*kx, v*ky
			norm := math.Hypot(dx, dy)
			half := 0.4 * cell * m / longest
			ex, ey := vg.Length(dx/norm*half), vg.Length(dy/norm*half)
			segs = append(segs, []vg.Point{{X: cx - ex, Y: cy - ey}, {X: cx + ex, Y: cy + ey}})
		}
	}
	segs = c.ClipLinesXY(segs...)
	c.StrokeLines(draw.LineStyle{Color: color.NRGBA{255, 255, 255, 150}, Width: 2.4}, segs...)
	c.StrokeLines(draw.LineStyle{Color: color.Black, Width: 1.2}, segs...)
}
