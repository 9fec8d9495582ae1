package figures

import (
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// legendEntry is one row of a legend: a name and the thumbnails drawn
// beside it.
type legendEntry struct {
	name   string
	thumbs []plot.Thumbnailer
}

// chart is a single-panel plot together with its legend and the polylines
// (in data coordinates; a single point stands for a marker) the legend must
// not cover.
type chart struct {
	p         *plot.Plot
	entries   []legendEntry
	obstacles []plotter.XYs
}

// Legend geometry in points (vg.Length units).
const (
	legendPad    vg.Length = 4 // inside the legend box
	legendMargin vg.Length = 6 // between the box and the axes
	legendClear  vg.Length = 3 // data closer than this counts as covered
)

// draw draws the plot and its legend on c. The legend goes in the first
// position inside the axes (top right, top left, bottom left, bottom right,
// then the edge midpoints) that no data crosses; if every position is
// covered, the legend goes to the right of the plot or below it, whichever
// leaves the plot more room.
func (ch *chart) draw(c draw.Canvas) {
	if len(ch.entries) == 0 {
		ch.p.Draw(c)
		return
	}
	leg, w, h := ch.legend(c, ch.entries)

	if box, ok := ch.freeSpot(c, w, h); ok {
		ch.p.Draw(c)
		drawLegend(c, &leg, box)
		return
	}
	// Outside: to the right of the plot, or below it, centred and in two
	// columns when there are four entries or more and they fit the width,
	// whichever leaves the plot the larger area (a wide legend beside a
	// wide figure took half of it); below when the title would not fit
	// beside the legend; never below when it would take half the height.
	W, H := c.Max.X-c.Min.X, c.Max.Y-c.Min.Y
	legs, widths, wb, hb := []*plot.Legend{&leg}, []vg.Length{w}, w, h
	if k := (len(ch.entries) + 1) / 2; len(ch.entries) >= 4 {
		l1, w1, h1 := ch.legend(c, ch.entries[:k])
		l2, w2, h2 := ch.legend(c, ch.entries[k:])
		if w1+w2 <= W {
			legs, widths, wb, hb = []*plot.Legend{&l1, &l2}, []vg.Length{w1, w2}, w1+w2, max(h1, h2)
		}
	}
	inner := c
	inner.Max.X -= w + legendMargin
	titleFits := ch.p.Title.TextStyle.Width(ch.p.Title.Text) <= inner.Max.X-inner.Min.X
	below := ((W*(H-hb-legendMargin) > (W-w-legendMargin)*H) || !titleFits) && hb <= H/2
	if !below {
		ch.p.Draw(inner)
		dc := ch.p.DataCanvas(inner)
		x0 := inner.Max.X + legendMargin
		drawLegend(c, &leg, vg.Rectangle{
			Min: vg.Point{X: x0, Y: dc.Max.Y - h},
			Max: vg.Point{X: x0 + w, Y: dc.Max.Y},
		})
		return
	}
	inner = c
	inner.Min.Y += hb + legendMargin
	ch.p.Draw(inner)
	dc := ch.p.DataCanvas(inner)
	x0 := max(c.Min.X, min((dc.Min.X+dc.Max.X-wb)/2, c.Max.X-wb))
	box := vg.Rectangle{Min: vg.Point{X: x0, Y: c.Min.Y}, Max: vg.Point{X: x0 + wb, Y: c.Min.Y + hb}}
	frameLegend(c, box)
	for i, l := range legs {
		l.Draw(draw.Canvas{Canvas: c.Canvas, Rectangle: vg.Rectangle{
			Min: vg.Point{X: box.Min.X + legendPad, Y: box.Min.Y + legendPad},
			Max: vg.Point{X: box.Min.X + widths[i] - legendPad, Y: box.Max.Y - legendPad},
		}})
		box.Min.X += widths[i]
	}
}

// legend returns a legend of the entries and its size with its padding.
func (ch *chart) legend(c draw.Canvas, entries []legendEntry) (plot.Legend, vg.Length, vg.Length) {
	leg := plot.NewLegend()
	leg.TextStyle.Font = sans(legendSize)
	leg.TextStyle.Handler = ch.p.TextHandler
	leg.Top, leg.Left = true, true
	leg.ThumbnailWidth = vg.Points(22)
	leg.Padding = vg.Points(1.5)
	for _, e := range entries {
		leg.Add(e.name, e.thumbs...)
	}
	r := leg.Rectangle(c)
	w := r.Max.X - r.Min.X + 2*legendPad
	h := r.Max.Y - r.Min.Y + leg.TextStyle.FontExtents().Descent + 2*legendPad
	return leg, w, h
}

// freeSpot returns a w×h box inside the data area of the plot drawn on c
// that no obstacle crosses.
func (ch *chart) freeSpot(c draw.Canvas, w, h vg.Length) (vg.Rectangle, bool) {
	dc := ch.p.DataCanvas(c)
	if w+2*legendMargin > dc.Max.X-dc.Min.X || h+2*legendMargin > dc.Max.Y-dc.Min.Y {
		return vg.Rectangle{}, false
	}
	trX, trY := ch.p.Transforms(&dc)
	paths := make([][]vg.Point, len(ch.obstacles))
	for i, xys := range ch.obstacles {
		pts := make([]vg.Point, len(xys))
		for j, xy := range xys {
			pts[j] = vg.Point{X: trX(xy.X), Y: trY(xy.Y)}
		}
		paths[i] = pts
	}
	left, right := dc.Min.X+legendMargin, dc.Max.X-legendMargin-w
	bottom, top := dc.Min.Y+legendMargin, dc.Max.Y-legendMargin-h
	midX, midY := (dc.Min.X+dc.Max.X-w)/2, (dc.Min.Y+dc.Max.Y-h)/2
	for _, at := range []vg.Point{
		{X: right, Y: top}, {X: left, Y: top}, {X: left, Y: bottom}, {X: right, Y: bottom},
		{X: midX, Y: top}, {X: midX, Y: bottom}, {X: right, Y: midY}, {X: left, Y: midY},
	} {
		box := vg.Rectangle{Min: at, Max: vg.Point{X: at.X + w, Y: at.Y + h}}
		if !covered(box, paths) {
			return box, true
		}
	}
	return vg.Rectangle{}, false
}

// covered reports whether any path comes within legendClear of box.
func covered(box vg.Rectangle, paths [][]vg.Point) bool {
	box.Min.X -= legendClear
	box.Min.Y -= legendClear
	box.Max.X += legendClear
	box.Max.Y += legendClear
	for _, pts := range paths {
		if len(pts) == 1 && inside(box, pts[0]) {
			return true
		}
		for i := 1; i < len(pts); i++ {
			if segmentHits(box, pts[i-1], pts[i]) {
				return true
			}
		}
	}
	return false
}

func inside(r vg.Rectangle, p vg.Point) bool {
	return p.X >= r.Min.X && p.X <= r.Max.X && p.Y >= r.Min.Y && p.Y <= r.Max.Y
}

// segmentHits reports whether the segment a–b meets rectangle r
// (Liang–Barsky clipping).
func segmentHits(r vg.Rectangle, a, b vg.Point) bool {
	dx, dy := float64(b.X-a.X), float64(b.Y-a.Y)
	t0, t1 := 0.0, 1.0
	clip := func(p, q float64) bool {
		if p == 0 {
			return q >= 0
		}
		t := q / p
		if p < 0 {
			if t > t1 {
				return false
			}
			t0 = max(t0, t)
		} else {
			if t < t0 {
				return false
			}
			t1 = min(t1, t)
		}
		return true
	}
	return clip(-dx, float64(a.X-r.Min.X)) && clip(dx, float64(r.Max.X-a.X)) &&
		clip(-dy, float64(a.Y-r.Min.Y)) && clip(dy, float64(r.Max.Y-a.Y)) && t0 <= t1
}

// frameLegend draws a legend's lightly framed white background.
func frameLegend(c draw.Canvas, box vg.Rectangle) {
	outline := []vg.Point{
		box.Min, {X: box.Max.X, Y: box.Min.Y}, box.Max, {X: box.Min.X, Y: box.Max.Y}, box.Min,
	}
	c.FillPolygon(color.NRGBA{255, 255, 255, 230}, outline)
	c.StrokeLines(draw.LineStyle{Color: color.Gray{Y: 180}, Width: vg.Points(0.5)}, outline)
}

// drawLegend draws leg inside box on a lightly framed white background.
func drawLegend(c draw.Canvas, leg *plot.Legend, box vg.Rectangle) {
	frameLegend(c, box)
	in := draw.Canvas{Canvas: c.Canvas, Rectangle: vg.Rectangle{
		Min: vg.Point{X: box.Min.X + legendPad, Y: box.Min.Y + legendPad},
		Max: vg.Point{X: box.Max.X - legendPad, Y: box.Max.Y - legendPad},
	}}
	leg.Draw(in)
}
