package model

import (
	"fmt"
	"math"
	"strings"

	"ntkbus/model/expr"
	"ntkbus/model/rng"
)

// Hole is a region removed from a problem's box: a ball (a disk in 2-D, an
// interval in 1-D) when Radius > 0, else the box [Min, Max].
type Hole struct {
	Name     string
	Center   []float64
	Radius   float64
	Min, Max []float64
}

// contains reports whether x lies inside the hole, its boundary excluded
// up to rounding (1e−12 relative to the hole's size), so that points drawn
// on the boundary count as the domain's.
func (h *Hole) contains(x []float64) bool {
	const eps = 1e-12
	if h.Radius > 0 {
		var s float64
		for k, c := range h.Center {
			d := x[k] - c
			s += float64(d * d)
		}
		return s < h.Radius*h.Radius*(1-eps)
	}
	for k := range h.Min {
		tol := eps * (h.Max[k] - h.Min[k])
		if !(x[k] > h.Min[k]+tol && x[k] < h.Max[k]-tol) {
			return false
		}
	}
	return true
}

func (h *Hole) String() string {
	if h.Radius > 0 {
		return fmt.Sprintf("hole %s (ball of radius %g at %v)", h.Name, h.Radius, h.Center)
	}
	return fmt.Sprintf("hole %s (box from %v to %v)", h.Name, h.Min, h.Max)
}

// domain is a box with holes.
type domain struct {
	box    [][2]float64
	holes  []Hole
	coords []string
}

// inside reports whether x lies in the closed box and in no hole.
func (d *domain) inside(x []float64) bool {
	for k, b := range d.box {
		if x[k] < b[0] || x[k] > b[1] {
			return false
		}
	}
	for i := range d.holes {
		if d.holes[i].contains(x) {
			return false
		}
	}
	return true
}

// pieceKind is where a piece of a block's points lies.
type pieceKind uint8

const (
	onInterior pieceKind = iota // the box minus the holes
	onFace                      // coordinate k fixed at v (a face of the box, or a slice through it)
	onBall                      // the sphere of a ball-shaped hole
	onHoleFace                  // coordinate k fixed at v on a box-shaped hole's boundary
)

// piece is one part of where a block's points lie, with the outward normal
// of the domain there (nil where there is none: the interior, a slice).
type piece struct {
	kind   pieceKind
	k      int     // the fixed coordinate (onFace, onHoleFace)
	v      float64 // its value
	hole   *Hole   // onBall, onHoleFace
	label  string  // as the file writes it: "x = 0", "hole disk"
	normal []*expr.Node
	noDn   string // why dn is refused here
	fixed  bool   // every point is the same point (a face of a 1-D box)
}

// pieces groups a block's pieces by the entries of its "on": point i of a
// block goes to entry i mod len(entries), and within an entry of several
// pieces (the faces of a box-shaped hole) to piece (i / len(entries)) mod
// len(entry).
type placement struct {
	entries [][]piece
}

func (pl *placement) pieceOf(i int) *piece {
	n := len(pl.entries)
	e := pl.entries[i%n]
	return &e[(i/n)%len(e)]
}

func (pl *placement) all() []*piece {
	var ps []*piece
	for e := range pl.entries {
		for j := range pl.entries[e] {
			ps = append(ps, &pl.entries[e][j])
		}
	}
	return ps
}

// parsePlace reads one entry of a block's "on": "interior", "boundary"
// (every face of the box), "x = v" or "hole NAME".
func (d *domain) parsePlace(s string) ([][]piece, error) {
	t := strings.TrimSpace(s)
	switch {
	case t == "interior":
		return [][]piece{{{kind: onInterior, label: t, noDn: "the block's points lie in the interior"}}}, nil
	case t == "boundary":
		var out [][]piece
		for k, b := range d.box {
			for _, v := range b {
				ps, err := d.face(k, v, fmt.Sprintf("%s = %v", d.coords[k], v))
				if err != nil {
					return nil, err
				}
				out = append(out, ps)
			}
		}
		return out, nil
	case strings.HasPrefix(t, "hole "):
		name := strings.TrimSpace(strings.TrimPrefix(t, "hole "))
		for i := range d.holes {
			if d.holes[i].Name == name {
				return [][]piece{d.holePieces(&d.holes[i])}, nil
			}
		}
		return nil, fmt.Errorf("on %q: no hole named %q (holes: %s)", s, name, d.holeNames())
	case strings.Contains(t, "="):
		lhs, rhs, _ := strings.Cut(t, "=")
		lhs, rhs = strings.TrimSpace(lhs), strings.TrimSpace(rhs)
		k := indexOf(d.coords, lhs)
		if k < 0 {
			return nil, fmt.Errorf("on %q: %q is not a coordinate (coordinates: %s)", s, lhs, strings.Join(d.coords, ", "))
		}
		v, err := parseNumber(rhs)
		if err != nil {
			return nil, fmt.Errorf("on %q: %q is not a number", s, rhs)
		}
		ps, err := d.face(k, v, t)
		if err != nil {
			return nil, fmt.Errorf("on %q: %w", s, err)
		}
		return [][]piece{ps}, nil
	}
	return nil, fmt.Errorf(`on %q: want "interior", "boundary", a face such as "%s = %v", or "hole NAME"`, s, d.coords[0], d.box[0][0])
}

func (d *domain) holeNames() string {
	if len(d.holes) == 0 {
		return "none"
	}
	n := make([]string, len(d.holes))
	for i, h := range d.holes {
		n[i] = h.Name
	}
	return strings.Join(n, ", ")
}

// face is coordinate k fixed at v: a face of the box when v is a bound,
// else a slice through it (with no outward normal).
func (d *domain) face(k int, v float64, label string) ([]piece, error) {
	lo, hi := d.box[k][0], d.box[k][1]
	if math.IsNaN(v) || v < lo || v > hi {
		return nil, fmt.Errorf("%s = %v lies outside the domain, where %s is in [%v, %v]", d.coords[k], v, d.coords[k], lo, hi)
	}
	p := piece{kind: onFace, k: k, v: v, label: label, fixed: len(d.box) == 1}
	switch v {
	case lo, hi:
		sign := 1.0
		if v == lo {
			sign = -1
		}
		p.normal = axisNormal(len(d.box), k, sign)
	default:
		p.noDn = fmt.Sprintf("%s = %v is a slice through the domain, not a face of the box, and has no outward normal", d.coords[k], v)
	}
	return []piece{p}, nil
}

// axisNormal is the normal sign·e_k.
func axisNormal(dim, k int, sign float64) []*expr.Node {
	n := make([]*expr.Node, dim)
	for j := range n {
		n[j] = expr.Number(0)
	}
	n[k] = expr.Number(sign)
	return n
}

// holePieces are the parts of a hole's boundary: its sphere, or the faces
// of its box. The domain's outward normal points into the hole.
func (d *domain) holePieces(h *Hole) []piece {
	label := "hole " + h.Name
	if h.Radius > 0 {
		// n = (c − x)/r on the sphere |x − c| = r.
		n := make([]*expr.Node, len(d.box))
		for k := range n {
			n[k] = expr.DivOf(expr.SubOf(expr.Number(h.Center[k]), expr.Variable(expr.Coord(k))), expr.Number(h.Radius))
		}
		return []piece{{kind: onBall, hole: h, label: label, normal: n}}
	}
	var ps []piece
	for k := range d.box {
		// The face at Min[k] has the hole above it: the normal is +e_k.
		ps = append(ps,
			piece{kind: onHoleFace, k: k, v: h.Min[k], hole: h, label: label, normal: axisNormal(len(d.box), k, 1), fixed: len(d.box) == 1},
			piece{kind: onHoleFace, k: k, v: h.Max[k], hole: h, label: label, normal: axisNormal(len(d.box), k, -1), fixed: len(d.box) == 1})
	}
	return ps
}

// maxTries bounds the draws of one point by rejection. The geometry is
// refused when its parts are under minFraction of their bounding region,
// so that running out of tries has probability below (1−0.01)^10000 ≈ 2e−44;
// should it happen, the point falls back to one found when the file was read.
const (
	maxTries    = 10000
	minFraction = 0.01
)

// draw draws a point of the piece into x from s, without checking that it
// is in the domain.
func (d *domain) draw(p *piece, s *rng.Stream, x []float64) {
	switch p.kind {
	case onInterior:
		for k, b := range d.box {
			x[k] = s.Uniform(b[0], b[1])
		}
	case onFace:
		for j, b := range d.box {
			if j == p.k {
				x[j] = p.v
				continue
			}
			x[j] = s.Uniform(b[0], b[1])
		}
	case onHoleFace:
		h := p.hole
		for j := range d.box {
			if j == p.k {
				x[j] = p.v
				continue
			}
			x[j] = s.Uniform(h.Min[j], h.Max[j])
		}
	case onBall:
		h := p.hole
		if len(x) == 2 {
			a := s.Uniform(0, 2*math.Pi)
			x[0] = h.Center[0] + float64(h.Radius*math.Cos(a))
			x[1] = h.Center[1] + float64(h.Radius*math.Sin(a))
			return
		}
		// A uniform direction: a normal vector, normalized.
		var n float64
		for k := range x {
			x[k] = s.Normal()
			n += float64(x[k] * x[k])
		}
		n = math.Sqrt(n)
		if n == 0 {
			x[0], n = 1, 1
		}
		for k := range x {
			x[k] = h.Center[k] + float64(h.Radius*(x[k]/n))
		}
	}
}

// accepts reports whether a point drawn on p belongs to the domain: in the
// box and outside every hole (other than p's own, whose boundary it is on).
func (d *domain) accepts(p *piece, x []float64) bool {
	for k, b := range d.box {
		if x[k] < b[0] || x[k] > b[1] {
			return false
		}
	}
	for i := range d.holes {
		h := &d.holes[i]
		if h == p.hole {
			continue
		}
		if h.contains(x) {
			return false
		}
	}
	if p.kind == onHoleFace {
		// On a box hole's face, but not inside the hole through another face.
		return !p.hole.contains(x)
	}
	return true
}

// needsRejection reports whether points drawn on p can fall outside the
// domain.
func (d *domain) needsRejection(p *piece) bool {
	return len(d.holes) > 0 || p.kind == onBall || p.kind == onHoleFace
}

// fraction estimates the share of the points drawn on p that the domain
// accepts, from n draws of a fixed stream, and returns one accepted point.
func (d *domain) fraction(p *piece, n int) (float64, []float64) {
	s := rng.New(0x9e3779b97f4a7c15, rng.DomainPoints, 0, 0)
	x := make([]float64, len(d.box))
	var first []float64
	hits := 0
	for i := 0; i < n; i++ {
		d.draw(p, &s, x)
		if d.accepts(p, x) {
			hits++
			if first == nil {
				first = append([]float64(nil), x...)
			}
		}
	}
	return float64(hits) / float64(n), first
}

// sampler returns the Sample function of a block's placement.
func (d *domain) sampler(pl *placement) (func(s *rng.Stream, i, count int, x []float64), error) {
	fallback := make(map[*piece][]float64)
	for _, p := range pl.all() {
		if !d.needsRejection(p) {
			continue
		}
		f, first := d.fraction(p, 4096)
		if f < minFraction {
			what := "the holes leave"
			if p.kind != onInterior {
				what = "the domain keeps"
			}
			return nil, fmt.Errorf("%s: %s %.2g%% of it (at least %g%%): move or shrink the holes", p.label, what, 100*f, 100*minFraction)
		}
		fallback[p] = first
	}
	return func(s *rng.Stream, i, _ int, x []float64) {
		p := pl.pieceOf(i)
		if !d.needsRejection(p) {
			d.draw(p, s, x)
			return
		}
		for t := 0; t < maxTries; t++ {
			d.draw(p, s, x)
			if d.accepts(p, x) {
				return
			}
		}
		copy(x, fallback[p])
	}, nil
}

// distance is how far x lies from the piece (for points read from a file,
// and to tell which piece a point is on).
func (p *piece) distance(x []float64) float64 {
	switch p.kind {
	case onFace, onHoleFace:
		return math.Abs(x[p.k] - p.v)
	case onBall:
		var s float64
		for k, c := range p.hole.Center {
			d := x[k] - c
			s += d * d
		}
		return math.Abs(math.Sqrt(s) - p.hole.Radius)
	}
	return 0
}

// nearest returns the index of the piece in ps that x lies closest to.
func nearest(ps []*piece, x []float64) int {
	best, bd := 0, math.Inf(1)
	for i, p := range ps {
		if d := p.distance(x); d < bd {
			best, bd = i, d
		}
	}
	return best
}

// grid returns the points of a regular g^d grid over the box that lie in
// the domain, row-major with the last coordinate fastest.
func (d *domain) grid(g int) []float64 {
	dim := len(d.box)
	total := 1
	for range d.box {
		total *= g
	}
	x := make([]float64, 0, total*dim)
	pt := make([]float64, dim)
	for i := 0; i < total; i++ {
		r := i
		for k := dim - 1; k >= 0; k-- {
			j := r % g
			r /= g
			b := d.box[k]
			pt[k] = b[0] + (b[1]-b[0])*float64(j)/float64(g-1)
		}
		if d.inside(pt) {
			x = append(x, pt...)
		}
	}
	return x
}
