package figures

import (
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Font sizes in points. Figures use Liberation Sans, which reads better than
// gonum/plot's default serif at small sizes.
const (
	titleSize  = 11
	suptitle   = 12
	labelSize  = 10
	tickSize   = 9
	legendSize = 9
)

func sans(size vg.Length) font.Font {
	return font.Font{Typeface: "Liberation", Variant: "Sans", Size: size}
}

// newPlot returns a plot with the package's fonts, tick lengths and labels.
func newPlot(title, xLabel, yLabel string) *plot.Plot {
	p := plot.New()
	rich := newRichText()
	p.TextHandler = rich
	p.Title.Text = title
	p.Title.TextStyle.Font = sans(titleSize)
	p.Title.TextStyle.Handler = rich
	p.Title.Padding = vg.Points(6)
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font = sans(labelSize)
		a.Label.TextStyle.Handler = rich
		a.Tick.Label.Handler = rich
		a.Label.Padding = vg.Points(3)
		a.Tick.Label.Font = sans(tickSize)
		a.Tick.Length = vg.Points(5)
		a.Padding = vg.Points(4)
	}
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	p.Legend.TextStyle.Font = sans(legendSize)
	p.Legend.TextStyle.Handler = rich
	return p
}

// gridLines returns light grid lines at the major ticks.
func gridLines() *plotter.Grid {
	g := plotter.NewGrid()
	sty := draw.LineStyle{Color: color.Gray{Y: 225}, Width: vg.Points(0.5)}
	g.Vertical, g.Horizontal = sty, sty
	return g
}

// seriesColor is the i-th colour of matplotlib's "tab10" cycle: ten
// distinguishable colours that keep their order across figures.
func seriesColor(i int) color.RGBA {
	tab10 := [...]color.RGBA{
		{0x1f, 0x77, 0xb4, 0xff}, {0xff, 0x7f, 0x0e, 0xff}, {0x2c, 0xa0, 0x2c, 0xff},
		{0xd6, 0x27, 0x28, 0xff}, {0x94, 0x67, 0xbd, 0xff}, {0x8c, 0x56, 0x4b, 0xff},
		{0xe3, 0x77, 0xc2, 0xff}, {0x7f, 0x7f, 0x7f, 0xff}, {0xbc, 0xbd, 0x22, 0xff},
		{0x17, 0xbe, 0xcf, 0xff},
	}
	return tab10[i%len(tab10)]
}

// withAlpha returns c with opacity a in [0, 1].
func withAlpha(c color.Color, a float64) color.Color {
	n := color.NRGBAModel.Convert(c).(color.NRGBA)
	n.A = uint8(math.Round(255 * a))
	return n
}

// nanColor fills cells and pixels whose value is NaN or infinite: a dark
// grey, distinct from both viridis and the pale middle of the diverging map.
func nanColor() color.RGBA { return color.RGBA{0x50, 0x50, 0x50, 0xff} }

// colormap maps values in [lo, hi] to colours through a lookup table.
type colormap struct {
	lut    []color.RGBA
	lo, hi float64
}

// at returns the colour of v, clamping to the range; NaN and ±Inf give
// nanColor.
func (m colormap) at(v float64) color.RGBA {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nanColor()
	}
	t := (v - m.lo) / (m.hi - m.lo)
	i := int(t*float64(len(m.lut)-1) + 0.5)
	i = max(0, min(len(m.lut)-1, i))
	return m.lut[i]
}

// lutSize is the number of colours in a colormap's lookup table.
const lutSize = 256

// sequentialLUT approximates matplotlib's "viridis", a perceptually uniform
// map readable in greyscale, by interpolating its ten-colour sampling.
func sequentialLUT() []color.RGBA {
	stops := [...]color.RGBA{
		{0x44, 0x01, 0x54, 0xff}, {0x48, 0x28, 0x78, 0xff}, {0x3e, 0x4a, 0x89, 0xff},
		{0x31, 0x68, 0x8e, 0xff}, {0x26, 0x82, 0x8e, 0xff}, {0x1f, 0x9e, 0x89, 0xff},
		{0x35, 0xb7, 0x79, 0xff}, {0x6d, 0xcd, 0x59, 0xff}, {0xb4, 0xde, 0x2c, 0xff},
		{0xfd, 0xe7, 0x25, 0xff},
	}
	lut := make([]color.RGBA, lutSize)
	for i := range lut {
		t := float64(i) / float64(lutSize-1) * float64(len(stops)-1)
		k := min(int(t), len(stops)-2)
		f := t - float64(k)
		a, b := stops[k], stops[k+1]
		mix := func(x, y uint8) uint8 { return uint8(math.Round((1-f)*float64(x) + f*float64(y))) }
		lut[i] = color.RGBA{mix(a.R, b.R), mix(a.G, b.G), mix(a.B, b.B), 0xff}
	}
	return lut
}

// divergingLUT is Moreland's smooth blue–red map, grey-white in the middle.
func divergingLUT() []color.RGBA {
	cm := moreland.SmoothBlueRed()
	cm.SetMin(0)
	cm.SetMax(1)
	lut := make([]color.RGBA, lutSize)
	for i := range lut {
		c, err := cm.At(float64(i) / float64(lutSize-1))
		if err != nil {
			c = nanColor()
		}
		lut[i] = color.RGBAModel.Convert(c).(color.RGBA)
	}
	return lut
}

// valueRange is a closed interval of finite values.
type valueRange struct{ lo, hi float64 }

func emptyRange() valueRange { return valueRange{math.Inf(1), math.Inf(-1)} }

func (r *valueRange) add(v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	r.lo = math.Min(r.lo, v)
	r.hi = math.Max(r.hi, v)
}

func (r valueRange) empty() bool { return r.lo > r.hi }

// colorRange turns a data range into a colormap range: symmetric about 0
// for a diverging map, and never of zero width.
func (r valueRange) colorRange(diverging bool) valueRange {
	if diverging {
		m := math.Max(math.Abs(r.lo), math.Abs(r.hi))
		if m == 0 {
			m = 1
		}
		return valueRange{-m, m}
	}
	return r.widen()
}

// widen returns r, widened by 5% of its value (or by 1 about 0) if it has
// zero width.
func (r valueRange) widen() valueRange {
	if r.lo == r.hi {
		d := math.Abs(r.lo) * 0.05
		if d == 0 {
			d = 1
		}
		return valueRange{r.lo - d, r.hi + d}
	}
	return r
}

func isFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// SeriesColor is the colour LinePlot gives its i-th series, for a figure
// whose panels should keep one colour per thing across them.
func SeriesColor(i int) color.Color { return seriesColor(i) }
