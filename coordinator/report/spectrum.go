package report

import (
	"fmt"
	"math"
	"path/filepath"
	"sort"

	"ntkbus/coordinator/figures"
	"ntkbus/coordinator/study"
)

// Eigenvalue curves: the spectrum command's figure and the operator
// study's figures.

// EigenCurve is one named list of eigenvalues, descending.
type EigenCurve struct {
	Name   string
	Values []float64
	Style  figures.Style
}

// EigenvaluePlot writes eigenvalue against index on a log scale, one
// series per curve (non-positive values are left out: a log axis cannot
// show them). A positive floor draws the rounding level of a float64
// eigensolver (ε·λ₁: eigenvalues below it are not resolved), as a dashed
// horizontal line. The index axis covers the eigenvalues that carry
// weight, those at or above the floor (without one, above 10⁻¹⁶·λ₁), and
// half as many again to show the fall; the title says where it is cut.
func EigenvaluePlot(path, title string, curves []EigenCurve, floor float64) error {
	level := floor
	n, top := 0, 0.0
	for _, c := range curves {
		n = max(n, len(c.Values))
		if len(c.Values) > 0 {
			top = math.Max(top, c.Values[0])
		}
	}
	if level <= 0 {
		level = showFloor * top
	}
	above := 0 // eigenvalues at or above the level, in the longest curve
	for _, c := range curves {
		k := 0
		for k < len(c.Values) && c.Values[k] >= level {
			k++
		}
		above = max(above, k)
	}
	show, xlabel := n, "index i"
	if above > 0 && above+max(5, above/2) < n {
		show = above + max(5, above/2)
		what := "10⁻¹⁶·λ_{1}"
		if floor > 0 {
			what = "the rounding level"
		}
		xlabel = fmt.Sprintf("index i: the first %d of %d eigenvalues, %d of them at or above %s", show, n, above, what)
	}
	var series []figures.Series
	for _, c := range curves {
		v := c.Values[:min(show, len(c.Values))]
		x := make([]float64, len(v))
		for i := range x {
			x[i] = float64(i + 1)
		}
		series = append(series, figures.Series{Name: c.Name, X: x, Y: v, Style: c.Style})
	}
	opt := figures.LineOptions{Title: title, XLabel: xlabel, YLabel: "eigenvalue λ_{i}", LogY: true}
	if floor > 0 {
		opt.References = []figures.Reference{{Label: "rounding level ε·λ_{1}", Slope: 0, X0: 1, Y0: floor}}
	}
	return figures.LinePlot(path, series, opt)
}

// showFloor is the smallest λ_i/λ₁ drawn: below it a float64 eigensolver
// returns rounding.
const showFloor = 1e-16

// SpectrumStudyFigures draws the operator study in the style of Gan et
// al.'s Figure 1 into dir: spectrum.png, λ_i/λ₁ against i for every
// operator (solid) with its best fitted decay (dashed, same colour), one
// panel per dimension (rows) and depth (columns) at the largest width; and
// decay.png, the exponential rate against the width with its 95% interval,
// one panel per dimension, a colour per operator and a line style per
// depth. It returns the files written.
func SpectrumStudyFigures(dir string, curves []study.SpectrumCurve, fits []study.DecayFit) ([]string, error) {
	if len(curves) == 0 {
		return nil, fmt.Errorf("spectrum figures: %w", figures.ErrNoData)
	}
	type key struct {
		dim, width, depth int
		op                string
	}
	best := map[key]*study.DecayFit{}
	expo := map[key]*study.DecayFit{}
	for i := range fits {
		f := &fits[i]
		k := key{f.Dim, f.Width, f.Depth, f.Operator}
		if f.Best {
			best[k] = f
		}
		if f.Model == "exponential" {
			expo[k] = f
		}
	}
	var dims, depths, widths []int
	seen := map[string]bool{}
	add := func(s *[]int, tag string, v int) {
		if !seen[fmt.Sprint(tag, v)] {
			seen[fmt.Sprint(tag, v)] = true
			*s = append(*s, v)
		}
	}
	for _, c := range curves {
		add(&dims, "dim", c.Dim)
		add(&depths, "depth", c.Depth)
		add(&widths, "width", c.Width)
	}
	sort.Ints(dims)
	sort.Ints(depths)
	sort.Ints(widths)
	wmax := widths[len(widths)-1]

	var panels []figures.LinePanel
	for _, dim := range dims {
		for _, depth := range depths {
			pn := figures.LinePanel{
				Title:  fmt.Sprintf("%d-D, %d hidden layer%s of %d", dim, depth, plural(depth), wmax),
				XLabel: "index i", YLabel: "λ_{i} / λ_{1}",
			}
			for i := range curves {
				c := &curves[i]
				if c.Dim != dim || c.Depth != depth || c.Width != wmax {
					continue
				}
				var x, y []float64
				for k, v := range c.Eigenvalues {
					r := v / c.Eigenvalues[0]
					if !(r >= showFloor) {
						break
					}
					x = append(x, float64(k+1))
					y = append(y, r)
				}
				name := opLabel(c.Operator)
				if f := best[key{c.Dim, c.Width, c.Depth, c.Operator}]; f != nil {
					name += fmt.Sprintf(": %s, rate %.2f", map[string]string{"power": "power", "exponential": "exp"}[f.Model], f.Rate)
					fx, fy := f.Curve(c)
					pn.Series = append(pn.Series, figures.Series{X: fx, Y: fy, Style: figures.Dashed, Group: c.Operator})
				}
				pn.Series = append(pn.Series, figures.Series{Name: name, X: x, Y: y, Group: c.Operator})
			}
			if len(pn.Series) > 0 {
				panels = append(panels, pn)
			}
		}
	}
	var out []string
	path := filepath.Join(dir, "spectrum.png")
	err := figures.LinePanels(path, panels, figures.LinePanelsOptions{
		Title: "NTK eigenvalues at initialization for operators T applied to u (dashed: the better of a power-law and an exponential fit)",
		Cols:  len(depths), LogY: true,
		Size: figures.Size{Width: 620 * len(depths), Height: 480*len(dims) + 50},
	})
	if err != nil {
		return nil, err
	}
	out = append(out, path)

	panels = panels[:0]
	styles := []figures.Style{figures.Solid, figures.Dashed, figures.Dotted}
	for _, dim := range dims {
		pn := figures.LinePanel{
			Title:  fmt.Sprintf("%d-D: λ_{i} ~ exp(−rate·i^{1/%d})", dim, dim),
			XLabel: "width", YLabel: "fitted rate (95% interval)",
		}
		if dim == 1 {
			pn.Title = "1-D: λ_{i} ~ exp(−rate·i)"
		}
		var ops []string
		for _, c := range curves {
			if c.Dim == dim && !contains(ops, c.Operator) {
				ops = append(ops, c.Operator)
			}
		}
		for di, depth := range depths {
			for _, op := range ops {
				var x, y, lo, hi []float64
				for _, w := range widths {
					if f := expo[key{dim, w, depth, op}]; f != nil {
						x = append(x, float64(w))
						y = append(y, f.Rate)
						lo = append(lo, f.RateLo)
						hi = append(hi, f.RateHi)
					}
				}
				if len(x) == 0 {
					continue
				}
				pn.Series = append(pn.Series, figures.Series{
					Name: fmt.Sprintf("%s, depth %d", opLabel(op), depth), X: x, Y: y, Lo: lo, Hi: hi,
					Style: styles[di%len(styles)], Group: op,
				})
			}
		}
		if len(pn.Series) > 0 {
			panels = append(panels, pn)
		}
	}
	path = filepath.Join(dir, "decay.png")
	if err := figures.LinePanels(path, panels, figures.LinePanelsOptions{
		Title: "Fitted exponential decay rate of the NTK eigenvalues (larger: faster decay)",
		LogX:  len(widths) > 1 && widths[len(widths)-1] >= 4*widths[0],
		Size:  figures.Size{Width: 620 * len(panels), Height: 520},
	}); err != nil {
		return out, err
	}
	return append(out, path), nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// opLabel writes an operator's name for a legend.
func opLabel(op string) string {
	switch op {
	case "u":
		return "T = I"
	case "u_x":
		return "T = ∂_{x}"
	case "u_xx":
		return "T = ∂_{xx}"
	case "laplacian":
		return "T = Δ"
	}
	return op
}
