package model

import (
	"encoding/binary"
	"fmt"
	"math"
	"sort"
)

// Reference is solution data: values of every output at points, such as a
// numerical solver's on a grid. A problem with a reference measures its
// errors at the reference's points.
type Reference struct {
	Name string    // where the data came from, for labels
	X    []float64 // points, count×Dim row-major
	U    []float64 // values, count×Outputs row-major

	dim, outputs int
	index        map[string]int // row of a point, by its coordinates' bits
	axes         [][]float64    // sorted coordinate values when the points form a full grid
}

// MaxReferenceRows bounds the rows of reference data.
const MaxReferenceRows = 1 << 22

// ParseReference reads CSV text whose header names every coordinate and
// every output of p (in any order; other columns are ignored).
func ParseReference(name, text string, p *Problem) (*Reference, error) {
	t, err := ParseTable(text)
	if err != nil {
		return nil, fmt.Errorf("reference %s: %w", name, err)
	}
	return NewReference(name, t, p)
}

// NewReference takes the columns of p's coordinates and outputs from t.
func NewReference(name string, t *Table, p *Problem) (*Reference, error) {
	if t.Rows() > MaxReferenceRows {
		return nil, fmt.Errorf("reference %s: %d rows, at most %d", name, t.Rows(), MaxReferenceRows)
	}
	xi, err := t.Columns(p.Coords, "reference data for problem "+p.Name)
	if err != nil {
		return nil, fmt.Errorf("reference %s: %w", name, err)
	}
	ui, err := t.Columns(p.outputNames(), "reference data for problem "+p.Name)
	if err != nil {
		return nil, fmt.Errorf("reference %s: %w", name, err)
	}
	r := &Reference{Name: name, X: t.Select(xi), U: t.Select(ui), dim: p.Dim, outputs: p.Outputs}
	r.index = make(map[string]int, t.Rows())
	for i := 0; i < t.Rows(); i++ {
		x := r.X[i*r.dim : (i+1)*r.dim]
		for k, v := range x {
			if v < p.Box[k][0] || v > p.Box[k][1] {
				return nil, fmt.Errorf("reference %s: row %d has %s = %v, outside the domain [%v, %v]", name, i+1, p.Coords[k], v, p.Box[k][0], p.Box[k][1])
			}
		}
		key := pointKey(x)
		if _, dup := r.index[key]; dup {
			return nil, fmt.Errorf("reference %s: row %d repeats the point %v", name, i+1, x)
		}
		r.index[key] = i
	}
	r.findGrid()
	return r, nil
}

func pointKey(x []float64) string {
	b := make([]byte, 8*len(x))
	for k, v := range x {
		binary.LittleEndian.PutUint64(b[8*k:], math.Float64bits(v+0)) // −0 and 0 alike
	}
	return string(b)
}

// findGrid notes the axes when the points are every combination of a few
// values per coordinate, so that At can interpolate between them.
func (r *Reference) findGrid() {
	n := len(r.X) / r.dim
	axes := make([][]float64, r.dim)
	total := 1
	for k := range axes {
		seen := map[float64]bool{}
		for i := 0; i < n; i++ {
			v := r.X[i*r.dim+k] + 0
			if !seen[v] {
				seen[v] = true
				axes[k] = append(axes[k], v)
			}
		}
		sort.Float64s(axes[k])
		total *= len(axes[k])
		if total > n || len(axes[k]) < 2 {
			return
		}
	}
	if total == n { // n distinct points, all combinations of the axes
		r.axes = axes
	}
}

// At sets u to the reference's values at x: the data where x is one of its
// points, multilinear interpolation where the points form a grid and x
// lies within it, NaN elsewhere.
func (r *Reference) At(x, u []float64) {
	if i, ok := r.index[pointKey(x)]; ok {
		copy(u, r.U[i*r.outputs:(i+1)*r.outputs])
		return
	}
	for o := range u[:r.outputs] {
		u[o] = math.NaN()
	}
	if r.axes == nil {
		return
	}
	// Cell and weights per coordinate.
	lo := make([]int, r.dim)
	w := make([]float64, r.dim)
	for k, a := range r.axes {
		v := x[k]
		if !(v >= a[0] && v <= a[len(a)-1]) {
			return
		}
		j := sort.SearchFloat64s(a, v) // a[j-1] < v <= a[j]
		j = min(max(j, 1), len(a)-1)
		lo[k] = j - 1
		w[k] = (v - a[j-1]) / (a[j] - a[j-1])
	}
	for o := range u[:r.outputs] {
		u[o] = 0
	}
	corner := make([]float64, r.dim)
	for c := 0; c < 1<<r.dim; c++ {
		weight := 1.0
		for k, a := range r.axes {
			j := lo[k]
			if c>>k&1 == 1 {
				j++
				weight *= w[k]
			} else {
				weight *= 1 - w[k]
			}
			corner[k] = a[j]
		}
		if weight == 0 {
			continue
		}
		i := r.index[pointKey(corner)]
		for o := range u[:r.outputs] {
			u[o] += weight * r.U[i*r.outputs+o]
		}
	}
}

// Points is the number of reference points.
func (r *Reference) Points() int { return len(r.X) / r.dim }

// outputNames are the names of p's outputs: OutputNames, or u (u1, u2, …
// for several outputs).
func (p *Problem) outputNames() []string {
	if len(p.OutputNames) == p.Outputs {
		return p.OutputNames
	}
	if p.Outputs == 1 {
		return []string{"u"}
	}
	n := make([]string, p.Outputs)
	for o := range n {
		n[o] = fmt.Sprintf("u%d", o+1)
	}
	return n
}

// OutputColumns names p's outputs for CSV columns and labels.
func (p *Problem) OutputColumns() []string { return append([]string(nil), p.outputNames()...) }

// SetReference makes r the problem's solution: Exact reads it and errors
// are measured at its points.
func (p *Problem) SetReference(r *Reference) {
	p.Reference = r
	p.Exact = r.At
	p.Truth = "reference data (" + r.Name + ")"
}

// ErrorPoints returns where a run measures its solution error: the
// reference's points when the problem has reference data, else the points
// of a regular g^Dim grid over the box (row-major, the last coordinate
// fastest) that lie in the domain, outside its holes.
func (p *Problem) ErrorPoints(g int) []float64 {
	if p.Reference != nil {
		return append([]float64(nil), p.Reference.X...)
	}
	d := p.domain
	if d == nil {
		d = &domain{box: p.Box}
	}
	return d.grid(g)
}

// Inside reports whether x lies in the problem's domain: in the closed box
// and outside every hole.
func (p *Problem) Inside(x []float64) bool {
	d := p.domain
	if d == nil {
		d = &domain{box: p.Box}
	}
	return d.inside(x)
}
