package figures

import (
	"errors"
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Style is how a Series is drawn.
type Style int

const (
	Solid        Style = iota // solid line (the default)
	Dashed                    // dashed line, e.g. an exact value beside its solid estimate
	Dotted                    // dotted line
	Markers                   // markers only, e.g. data points
	SolidMarkers              // solid line with a marker at every point
)

// Series is one named curve of a LinePlot.
type Series struct {
	// Name is the legend entry; a series without a name is left out of
	// the legend.
	Name string
	// X and Y are the points, of equal length. Points with a NaN or
	// infinite coordinate, or a non-positive one on a log axis, are
	// skipped and the line joins their neighbours.
	X, Y []float64
	// Lo and Hi, if set, shade the band between them (a confidence
	// interval, say) in the series colour; both need len(X) values.
	Lo, Hi []float64
	// Err, if set, draws error bars Y±Err (standard errors, say); it needs
	// len(X) values. On a log axis a bar whose lower end is not positive
	// runs to the bottom of the axes.
	Err   []float64
	Style Style
	// Group gives related series one colour: series with the same
	// non-empty Group share the colour of the first of them, so that
	// "λ_{D} exact" (Dashed) and "λ_{D} estimate" (Solid) match.
	Group string
	// Color, if not nil, overrides the automatic colour.
	Color color.Color
}

// Reference is a black dashed guide line y = C·x^Slope through the point
// (X0, Y0), drawn over the x-range of the data: Slope −1 with the label
// "O(N⁻¹) reference" shows an O(1/N) rate.
type Reference struct {
	Label  string
	Slope  float64
	X0, Y0 float64
}

// LineOptions configures a LinePlot.
type LineOptions struct {
	Size                  // default 960×640 px
	Title, XLabel, YLabel string
	LogX, LogY            bool
	References            []Reference
}

// LinePlot writes a PNG plot of named series to path: loss curves, loss
// weights over steps with confidence bands, eigenvalue trajectories, or
// (with the Markers style) data points beside true and fitted curves. The
// legend is placed where it covers no data, outside the axes if need be.
func LinePlot(path string, series []Series, opt LineOptions) error {
	sz, err := opt.Size.resolve(960, 640)
	if err != nil {
		return fmt.Errorf("figures: line plot %q: %w", path, err)
	}
	ax := axes{opt.Title, opt.XLabel, opt.YLabel, opt.LogX, opt.LogY}
	ch, err := buildLines(series, opt.References, ax)
	if err != nil {
		return fmt.Errorf("figures: line plot %q: %w", path, err)
	}
	if err := writePNG(path, sz, ch.draw); err != nil {
		return fmt.Errorf("figures: write line plot %q: %w", path, err)
	}
	return nil
}

// axes holds the titles and scales of a single-panel plot.
type axes struct {
	title, xLabel, yLabel string
	logX, logY            bool
}

// usable reports whether v can be drawn on an axis.
func usable(v float64, log bool) bool { return isFinite(v) && (!log || v > 0) }

// scaled maps a usable value to plot coordinates. Log axes are drawn as
// linear axes of log10 values with power-of-ten tick labels (logAxis):
// gonum's plot.LogScale panics on non-positive values and misplaces the
// padding for a centred axis label.
func scaled(v float64, log bool) float64 {
	if log {
		return math.Log10(v)
	}
	return v
}

// Line width and marker radius in points.
const (
	lineWidth    vg.Length = 1.5
	markerRadius vg.Length = 2.5
)

func lineStyle(c color.Color, s Style) draw.LineStyle {
	sty := draw.LineStyle{Color: c, Width: lineWidth}
	switch s {
	case Dashed:
		sty.Dashes = []vg.Length{6, 3}
	case Dotted:
		sty.Dashes = []vg.Length{1.5, 2.5}
	}
	return sty
}

// buildLines checks the series and references and assembles them into a
// chart with log or linear axes fitted to the drawable data.
func buildLines(series []Series, refs []Reference, ax axes) (*chart, error) {
	if len(series) == 0 {
		return nil, errors.New("no series")
	}
	for i, s := range series {
		if err := s.check(); err != nil {
			return nil, fmt.Errorf("series %d %q: %w", i, s.Name, err)
		}
	}
	p := newPlot(ax.title, ax.xLabel, ax.yLabel)
	ch := &chart{p: p}
	p.Add(gridLines())

	xr, yr := emptyRange(), emptyRange()
	finite := false // some point is finite, perhaps not positive
	var drawn []*drawnSeries
	groups := map[string]color.Color{}
	next := 0
	// Bands are lighter the more there are, so that where several overlap
	// each line stays visible instead of one mass of colour.
	bands := 0
	for i := range series {
		if series[i].Lo != nil {
			bands++
		}
	}
	bandAlpha := 0.2
	if bands > 3 {
		bandAlpha = max(0.06, 0.6/float64(bands))
	}
	for i := range series {
		s := &series[i]
		col, ok := groups[s.Group]
		switch {
		case s.Color != nil:
			col = s.Color
		case !ok:
			col = seriesColor(next)
			next++
		}
		if s.Group != "" && !ok {
			groups[s.Group] = col
		}
		d := s.prepare(ax, col, bandAlpha)
		finite = finite || d.finite
		if len(d.pts) == 0 {
			continue
		}
		for _, xy := range d.pts {
			xr.add(xy.X)
			yr.add(xy.Y)
		}
		for _, xy := range d.band {
			yr.add(xy.Y)
		}
		for i := range d.bars.x {
			yr.add(d.bars.hi[i])
			yr.add(d.bars.lo[i]) // NaN, for a bar off a log axis, is ignored
		}
		drawn = append(drawn, d)
	}
	if xr.empty() {
		if finite && (ax.logX || ax.logY) {
			return nil, fmt.Errorf("%w: no positive values on the log axis", ErrNoData)
		}
		return nil, ErrNoData
	}

	// References span the data's x-range and widen its y-range.
	var refLines []*plotter.Line
	for i, r := range refs {
		pts, err := r.points(xr, ax)
		if err != nil {
			return nil, fmt.Errorf("reference %d %q: %w", i, r.Label, err)
		}
		if len(pts) < 2 {
			refLines = append(refLines, nil)
			continue
		}
		for _, xy := range pts {
			yr.add(xy.Y)
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return nil, fmt.Errorf("reference %d %q: %w", i, r.Label, err)
		}
		l.LineStyle = draw.LineStyle{Color: color.Black, Width: 1.2, Dashes: []vg.Length{5, 3}}
		refLines = append(refLines, l)
	}

	// Bands first so that every line is drawn over every band.
	for _, d := range drawn {
		if d.bandPoly != nil {
			p.Add(d.bandPoly)
		}
	}
	for _, d := range drawn {
		var thumbs []plot.Thumbnailer
		if d.bandPoly != nil {
			thumbs = append(thumbs, d.bandPoly)
			ch.obstacles = append(ch.obstacles, d.band)
		}
		if len(d.bars.x) > 0 {
			p.Add(&d.bars)
			ch.obstacles = append(ch.obstacles, d.bars.segments(yr.lo)...)
		}
		if d.line != nil {
			p.Add(d.line)
			thumbs = append(thumbs, d.line)
			ch.obstacles = append(ch.obstacles, d.pts)
		}
		if d.marks != nil {
			p.Add(d.marks)
			thumbs = append(thumbs, d.marks)
			for _, xy := range d.pts {
				ch.obstacles = append(ch.obstacles, plotter.XYs{xy})
			}
		}
		if d.name != "" {
			ch.entries = append(ch.entries, legendEntry{d.name, thumbs})
		}
	}
	for i, l := range refLines {
		if l == nil {
			continue
		}
		p.Add(l)
		ch.obstacles = append(ch.obstacles, l.XYs)
		if refs[i].Label != "" {
			ch.entries = append(ch.entries, legendEntry{refs[i].Label, []plot.Thumbnailer{l}})
		}
	}

	setAxis(&p.X, xr, ax.logX)
	setAxis(&p.Y, yr, ax.logY)
	return ch, nil
}

// setAxis sets the ticks and range of a to cover r, in plot coordinates.
func setAxis(a *plot.Axis, r valueRange, log bool) {
	if log {
		a.Tick.Marker = logAxis{}
		if r.lo == r.hi {
			r.lo, r.hi = r.lo-math.Log10(2), r.hi+math.Log10(2)
		}
	} else {
		a.Tick.Marker = linearTicks{}
		r = r.widen()
	}
	a.Min, a.Max = r.lo, r.hi
}

// check validates the lengths and style of s.
func (s *Series) check() error {
	n := len(s.X)
	if len(s.Y) != n {
		return fmt.Errorf("X has %d values but Y has %d", n, len(s.Y))
	}
	if (s.Lo == nil) != (s.Hi == nil) {
		return errors.New("band needs both Lo and Hi")
	}
	if s.Lo != nil && (len(s.Lo) != n || len(s.Hi) != n) {
		return fmt.Errorf("band Lo/Hi have %d/%d values, want %d", len(s.Lo), len(s.Hi), n)
	}
	if s.Err != nil && len(s.Err) != n {
		return fmt.Errorf("Err has %d values, want %d", len(s.Err), n)
	}
	if s.Style < Solid || s.Style > SolidMarkers {
		return fmt.Errorf("unknown style %d", s.Style)
	}
	return nil
}

// drawnSeries is a series reduced to its drawable points and plotters.
type drawnSeries struct {
	name     string
	finite   bool        // some point had finite coordinates
	pts      plotter.XYs // usable points
	band     plotter.XYs // band outline: upper edge then lower edge reversed
	bandPoly *plotter.Polygon
	bars     errorBars
	line     *plotter.Line
	marks    *plotter.Scatter
}

// prepare drops unusable points and builds the plotters for s.
func (s *Series) prepare(ax axes, col color.Color, bandAlpha float64) *drawnSeries {
	d := &drawnSeries{name: s.Name, bars: errorBars{color: col}}
	var upper, lower plotter.XYs
	for i := range s.X {
		x, y := s.X[i], s.Y[i]
		d.finite = d.finite || (isFinite(x) && isFinite(y))
		if !usable(x, ax.logX) {
			continue
		}
		px := scaled(x, ax.logX)
		if usable(y, ax.logY) {
			d.pts = append(d.pts, plotter.XY{X: px, Y: scaled(y, ax.logY)})
			if s.Err != nil && isFinite(s.Err[i]) && s.Err[i] > 0 {
				lo, hi := y-s.Err[i], y+s.Err[i]
				d.bars.x = append(d.bars.x, px)
				d.bars.hi = append(d.bars.hi, scaled(hi, ax.logY))
				if usable(lo, ax.logY) {
					d.bars.lo = append(d.bars.lo, scaled(lo, ax.logY))
				} else {
					d.bars.lo = append(d.bars.lo, math.NaN())
				}
			}
		}
		if s.Lo != nil {
			lo, hi := math.Min(s.Lo[i], s.Hi[i]), math.Max(s.Lo[i], s.Hi[i])
			if usable(lo, ax.logY) && usable(hi, ax.logY) {
				upper = append(upper, plotter.XY{X: px, Y: scaled(hi, ax.logY)})
				lower = append(lower, plotter.XY{X: px, Y: scaled(lo, ax.logY)})
			}
		}
	}
	if len(d.pts) == 0 {
		return d
	}
	if len(upper) >= 2 {
		d.band = append(d.band, upper...)
		for i := len(lower) - 1; i >= 0; i-- {
			d.band = append(d.band, lower[i])
		}
		if poly, err := plotter.NewPolygon(d.band); err == nil {
			poly.Color = withAlpha(col, bandAlpha)
			poly.LineStyle.Width = 0
			d.bandPoly = poly
		}
	}
	if s.Style != Markers {
		if l, err := plotter.NewLine(d.pts); err == nil {
			l.LineStyle = lineStyle(col, s.Style)
			d.line = l
		}
	}
	if s.Style == Markers || s.Style == SolidMarkers {
		if sc, err := plotter.NewScatter(d.pts); err == nil {
			sc.GlyphStyle = draw.GlyphStyle{Color: col, Radius: markerRadius, Shape: draw.CircleGlyph{}}
			d.marks = sc
		}
	}
	return d
}

// points samples the reference line over the x-range xr, given and
// returned in plot coordinates.
func (r Reference) points(xr valueRange, ax axes) (plotter.XYs, error) {
	if !isFinite(r.Slope) || !(r.X0 > 0) || !isFinite(r.X0) || !usable(r.Y0, ax.logY) {
		return nil, fmt.Errorf("needs a finite slope, X0 > 0 and a finite Y0 (positive on a log axis), got slope %g at (%g, %g)", r.Slope, r.X0, r.Y0)
	}
	n := 64
	if ax.logX && ax.logY {
		n = 2 // a power law is straight on log-log axes
	}
	var pts plotter.XYs
	for i := range n {
		px := xr.lo + float64(i)/float64(n-1)*(xr.hi-xr.lo)
		x := px
		if ax.logX {
			x = math.Pow(10, px)
		}
		y := r.Y0 * math.Pow(x/r.X0, r.Slope)
		if usable(x, ax.logX) && usable(y, ax.logY) {
			pts = append(pts, plotter.XY{X: px, Y: scaled(y, ax.logY)})
		}
	}
	return pts, nil
}

// errorBars draws vertical bars from lo to hi with caps. A NaN lower end
// (one that was not positive on a log axis) is drawn to the bottom of the
// axes, without a cap.
type errorBars struct {
	x, lo, hi []float64
	color     color.Color
}

const capWidth vg.Length = 3 // half-width of an error-bar cap, in points

func (e *errorBars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	sty := draw.LineStyle{Color: e.color, Width: 1}
	for i, x := range e.x {
		cx, top := trX(x), trY(e.hi[i])
		bot, capped := c.Min.Y, false
		if isFinite(e.lo[i]) {
			bot, capped = trY(e.lo[i]), true
		}
		c.StrokeLines(sty, c.ClipLinesXY([]vg.Point{{X: cx, Y: bot}, {X: cx, Y: top}})...)
		c.StrokeLines(sty, c.ClipLinesXY([]vg.Point{{X: cx - capWidth, Y: top}, {X: cx + capWidth, Y: top}})...)
		if capped {
			c.StrokeLines(sty, c.ClipLinesXY([]vg.Point{{X: cx - capWidth, Y: bot}, {X: cx + capWidth, Y: bot}})...)
		}
	}
}

// segments returns the bars as obstacle polylines; bottom is the lowest y
// of the axes.
func (e *errorBars) segments(bottom float64) []plotter.XYs {
	segs := make([]plotter.XYs, len(e.x))
	for i, x := range e.x {
		lo := e.lo[i]
		if !isFinite(lo) {
			lo = bottom
		}
		segs[i] = plotter.XYs{{X: x, Y: lo}, {X: x, Y: e.hi[i]}}
	}
	return segs
}
