package figures

import (
	"image"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// panel is one image-like plot of a multi-panel figure: a raster filling
// the axes, overlays on top, and a colour bar to the right.
type panel struct {
	p      *plot.Plot
	aspect float64 // width/height of the data area; 0 fills the cell
	cmap   colormap
}

// Colour bar geometry in points.
const (
	barGap   vg.Length = 8  // between the axes and the bar
	barWidth vg.Length = 11 // of the bar itself
	barTick  vg.Length = 3  // tick marks, pointing right
	barLabel vg.Length = 3  // between tick marks and labels
)

// barStyle is the text style of colour-bar labels.
func barStyle(p *plot.Plot) text.Style {
	sty := p.Y.Tick.Label
	sty.XAlign = draw.XLeft
	sty.YAlign = draw.YCenter
	return sty
}

// barTicks returns the labelled ticks of the colour bar.
func (pn *panel) barTicks() []plot.Tick {
	var ticks []plot.Tick
	for _, t := range (linearTicks{}).Ticks(pn.cmap.lo, pn.cmap.hi) {
		if !t.IsMinor() && t.Value >= pn.cmap.lo && t.Value <= pn.cmap.hi {
			ticks = append(ticks, t)
		}
	}
	return ticks
}

// barSpace is the width the colour bar and its labels take.
func (pn *panel) barSpace() vg.Length {
	sty := barStyle(pn.p)
	var w vg.Length
	for _, t := range pn.barTicks() {
		w = max(w, sty.Width(t.Label))
	}
	return barGap + barWidth + barTick + barLabel + w + 2
}

// fit returns the size of the largest data area with the panel's aspect
// ratio that fits in cell beside the colour bar.
func (pn *panel) fit(cell draw.Canvas) vg.Point {
	area := cell
	area.Max.X -= pn.barSpace()
	dc := pn.p.DataCanvas(area)
	w, h := max(0, dc.Max.X-dc.Min.X), max(0, dc.Max.Y-dc.Min.Y)
	if pn.aspect > 0 && w > 0 && h > 0 {
		if float64(w/h) > pn.aspect {
			w = h * vg.Length(pn.aspect)
		} else {
			h = w / vg.Length(pn.aspect)
		}
	}
	return vg.Point{X: w, Y: h}
}

// draw draws the panel in cell with a data area of the given size (at most
// what fits), centred together with its colour bar.
func (pn *panel) draw(cell draw.Canvas, size vg.Point, dpi int) {
	area := cell
	area.Max.X -= pn.barSpace()
	dc := pn.p.DataCanvas(area)
	if dx := (dc.Max.X - dc.Min.X - size.X) / 2; dx > 0 {
		area.Min.X += dx
		area.Max.X -= dx
	}
	if dy := (dc.Max.Y - dc.Min.Y - size.Y) / 2; dy > 0 {
		area.Min.Y += dy
		area.Max.Y -= dy
	}
	dc = pn.p.DataCanvas(area)
	pn.p.Draw(area)
	pn.drawBar(cell, dc.Rectangle, dpi)
}

// drawBar draws the colour bar beside the data rectangle r.
func (pn *panel) drawBar(c draw.Canvas, r vg.Rectangle, dpi int) {
	if r.Max.Y <= r.Min.Y {
		return
	}
	bar := vg.Rectangle{
		Min: vg.Point{X: r.Max.X + barGap, Y: r.Min.Y},
		Max: vg.Point{X: r.Max.X + barGap + barWidth, Y: r.Max.Y},
	}
	h := max(2, pixels(bar.Max.Y-bar.Min.Y, dpi))
	w := max(1, pixels(barWidth, dpi))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for py := range h {
		v := pn.cmap.hi - (float64(py)+0.5)/float64(h)*(pn.cmap.hi-pn.cmap.lo)
		col := pn.cmap.at(v)
		for px := range w {
			img.SetRGBA(px, py, col)
		}
	}
	c.DrawImage(bar, img)
	frame := draw.LineStyle{Color: color.Black, Width: 0.5}
	c.StrokeLines(frame, []vg.Point{
		bar.Min, {X: bar.Max.X, Y: bar.Min.Y}, bar.Max, {X: bar.Min.X, Y: bar.Max.Y}, bar.Min,
	})
	sty := barStyle(pn.p)
	for _, t := range pn.barTicks() {
		y := bar.Min.Y + vg.Length((t.Value-pn.cmap.lo)/(pn.cmap.hi-pn.cmap.lo))*(bar.Max.Y-bar.Min.Y)
		c.StrokeLine2(frame, bar.Max.X, y, bar.Max.X+barTick, y)
		c.FillText(sty, vg.Point{X: bar.Max.X + barTick + barLabel, Y: y}, t.Label)
	}
}

// layout returns the number of columns for n panels: one row up to three
// panels, 2×2 for four, otherwise about square.
func layout(n, cols int) int {
	switch {
	case cols > 0:
		return min(cols, n)
	case n <= 3:
		return n
	case n == 4:
		return 2
	default:
		return int(math.Ceil(math.Sqrt(float64(n))))
	}
}

// drawPanels lays panels out in rows of cols under an optional figure title.
func drawPanels(c draw.Canvas, title string, panels []*panel, cols, dpi int) {
	if title != "" {
		sty := text.Style{
			Color:   color.Black,
			Font:    sans(suptitle),
			XAlign:  draw.XCenter,
			YAlign:  draw.YTop,
			Handler: newRichText(),
		}
		const pad vg.Length = 5
		c.FillText(sty, vg.Point{X: c.Center().X, Y: c.Max.Y - pad}, title)
		c.Max.Y -= sty.Height(title) + 2*pad
	}
	rows := (len(panels) + cols - 1) / cols
	tiles := draw.Tiles{
		Rows: rows, Cols: cols,
		PadTop: 4, PadBottom: 4, PadLeft: 4, PadRight: 6,
		PadX: 14, PadY: 12,
	}
	// Panels of one aspect ratio get data areas of one size, so that they
	// line up across rows and columns whatever their tick labels.
	sizes := make([]vg.Point, len(panels))
	same := true
	for k, pn := range panels {
		sizes[k] = pn.fit(tiles.At(c, k%cols, k/cols))
		same = same && pn.aspect == panels[0].aspect
	}
	if same {
		common := sizes[0]
		for _, s := range sizes {
			common.X, common.Y = min(common.X, s.X), min(common.Y, s.Y)
		}
		for k := range sizes {
			sizes[k] = common
		}
	}
	for k, pn := range panels {
		pn.draw(tiles.At(c, k%cols, k/cols), sizes[k], dpi)
	}
}

// raster fills the data rectangle [x0, x1]×[y0, y1] with an image rendered
// at device resolution, so that matrix cells stay sharp and smooth fields
// are not resampled by the drawing backend.
type raster struct {
	dpi            int
	x0, x1, y0, y1 float64
	color          func(x, y float64) color.RGBA
}

func (r *raster) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	rect := vg.Rectangle{
		Min: vg.Point{X: trX(r.x0), Y: trY(r.y0)},
		Max: vg.Point{X: trX(r.x1), Y: trY(r.y1)},
	}
	w, h := pixels(rect.Max.X-rect.Min.X, r.dpi), pixels(rect.Max.Y-rect.Min.Y, r.dpi)
	if w < 1 || h < 1 {
		return
	}
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for py := range h {
		y := r.y1 - (float64(py)+0.5)/float64(h)*(r.y1-r.y0)
		for px := range w {
			x := r.x0 + (float64(px)+0.5)/float64(w)*(r.x1-r.x0)
			img.SetRGBA(px, py, r.color(x, y))
		}
	}
	c.DrawImage(rect, img)
}

// imageAxes sets an axis to exactly [lo, hi] with no padding, as for an
// image that fills the axes.
func imageAxes(a *plot.Axis, lo, hi float64) {
	a.Min, a.Max = lo, hi
	a.Padding = 0
}
