package optim

import (
	"context"
	"errors"
	"fmt"

	"gonum.org/v1/gonum/optimize"

	"ntkbus/model"
)

// LBFGS is gonum's limited-memory BFGS (optimize.LBFGS, Nocedal & Wright's
// two-loop recursion) with the Moré–Thuente line search (strong Wolfe
// conditions), driven by reverse communication: gonum's
// optimize.LinesearchMethod says where to evaluate Φ and ∇Φ, the method
// evaluates them on the trainer's evaluator, and one step of the run is
// one major iteration. It needs a fixed objective (fixed weights and
// points).
//
// Its checkpoint state is the last Store+1 major iterates (θ, Φ, ∇Φ):
// gonum keeps its memory in unexported fields, so a resumed run replays
// them through the same LBFGS code (InitDirection, then NextDirection),
// which rebuilds the memory to the bit.
type LBFGS struct {
	store  int
	p      int
	lb     *optimize.LBFGS
	ls     *optimize.LinesearchMethod
	replay *replayer
	loc    optimize.Location
	have   bool // loc holds θ_t with its Φ and ∇Φ
	// resumed: θ_t's evaluation by the next step only repeats the one the
	// interrupted run did (and counted) in its line search.
	resumed bool
	hist    []Iterate // the last store+1 major iterates, oldest first
	r, wr   []float64
}

// Iterate is one major iterate of L-BFGS: θ, Φ(θ) and ∇Φ(θ).
type Iterate struct {
	X []float64
	F float64
	G []float64
}

// LBFGSStore is the number of correction pairs L-BFGS keeps (gonum's
// default).
const LBFGSStore = 15

// maxLBFGSEvals bounds the evaluations of one line search; beyond them
// the step is rejected and L-BFGS restarts from θ.
const maxLBFGSEvals = 40

// NewLBFGS returns L-BFGS for p parameters.
func NewLBFGS(p int) *LBFGS {
	m := &LBFGS{store: LBFGSStore, p: p}
	m.restart()
	return m
}

// restart forgets the memory: the next step starts afresh from θ.
func (m *LBFGS) restart() {
	m.lb = &optimize.LBFGS{Store: m.store}
	m.replay = &replayer{lb: m.lb}
	m.ls = &optimize.LinesearchMethod{NextDirectioner: m.replay, Linesearcher: &optimize.MoreThuente{}}
	m.have = false
	m.hist = m.hist[:0]
}

func (m *LBFGS) Needs() Needs      { return Needs{} }
func (m *LBFGS) Columns() []string { return []string{"step_rejected", "line_search_evals"} }

// evaluate sets loc's Φ and ∇Φ at loc.X: a forward and a backward pass.
func (m *LBFGS) evaluate(p *Problem, loc *optimize.Location) {
	lay := p.Eval.Layout()
	if len(m.r) != lay.N {
		m.r, m.wr = make([]float64, lay.N), make([]float64, lay.N)
	}
	p.Eval.Forward(loc.X, m.r)
	loc.F = p.ObjectiveAt(m.r)
	for b, sp := range lay.Blocks {
		for i := sp.Off; i < sp.Off+sp.Len; i++ {
			m.wr[i] = p.Weights[b] * m.r[i]
		}
	}
	p.Eval.Backward([]model.Cotangent{{V: m.wr, Dst: loc.Gradient}})
}

// Step runs one major iteration of L-BFGS from θ_t.
func (m *LBFGS) Step(_ context.Context, p *Problem, rec *Record) error {
	*rec = Record{}
	loc := &m.loc
	if !m.have {
		// The first step, after a restart or a resume: Φ and ∇Φ at θ_t.
		loc.X = append(loc.X[:0], p.Theta...)
		loc.Gradient = resize(loc.Gradient, len(p.Theta))
		m.evaluate(p, loc)
		if !m.resumed {
			rec.Evals++
		}
		m.resumed = false
		m.keep(loc)
	}
	var op optimize.Operation
	var err error
	if !m.have {
		op, err = m.ls.Init(loc)
		m.have = true
	} else {
		op, err = m.ls.Iterate(loc) // after a major iteration: the next direction
	}
	for err == nil && op != optimize.MajorIteration {
		if op&^(optimize.FuncEvaluation|optimize.GradEvaluation) != 0 {
			err = fmt.Errorf("L-BFGS asked for operation %v", op)
			break
		}
		if rec.Evals == maxLBFGSEvals {
			err = fmt.Errorf("no step after %d evaluations", rec.Evals)
			break
		}
		m.evaluate(p, loc)
		rec.Evals++
		op, err = m.ls.Iterate(loc)
	}
	if err != nil {
		// No progress along the direction (at the floor of Φ's rounding,
		// or a failed line search): θ stays, and the memory restarts.
		rec.Rejected = true
		m.restart()
		return nil
	}
	copy(p.Theta, loc.X)
	m.keep(loc)
	return nil
}

// keep records a major iterate, keeping the last store+1.
func (m *LBFGS) keep(loc *optimize.Location) {
	if len(m.hist) == m.store+1 {
		first := m.hist[0]
		copy(m.hist, m.hist[1:])
		m.hist[m.store] = first
	} else {
		m.hist = append(m.hist, Iterate{})
	}
	it := &m.hist[len(m.hist)-1]
	it.X = append(it.X[:0], loc.X...)
	it.F = loc.F
	it.G = append(it.G[:0], loc.Gradient...)
}

func (m *LBFGS) State() *State { return &State{History: m.hist} }

func (m *LBFGS) SetState(st *State) error {
	if st == nil {
		st = &State{} // no iterates yet
	}
	switch {
	case st.M != nil || st.V != nil || st.Mu != 0 || st.Nu != 0 || st.Eta != 0:
		return errors.New("another optimizer's state for L-BFGS")
	case len(st.History) > m.store+1:
		return fmt.Errorf("L-BFGS history of %d iterates: it keeps at most %d", len(st.History), m.store+1)
	}
	for i, it := range st.History {
		if len(it.X) != m.p || len(it.G) != m.p {
			return fmt.Errorf("L-BFGS iterate %d of %d and %d values for p = %d", i, len(it.X), len(it.G), m.p)
		}
		if !finite(it.X) || !finite(it.G) || !finite([]float64{it.F}) {
			return fmt.Errorf("L-BFGS iterate %d is not finite", i)
		}
	}
	m.restart()
	if n := len(st.History); n > 0 {
		// The last iterate is θ_t, evaluated again by the next step (the
		// same bits); the memory is rebuilt from those before it when that
		// step asks for its direction.
		for _, it := range st.History[:n-1] {
			m.hist = append(m.hist, Iterate{X: append([]float64(nil), it.X...), F: it.F, G: append([]float64(nil), it.G...)})
		}
		m.replay.hist = append([]Iterate(nil), m.hist...)
		m.resumed = true
	}
	return nil
}

// replayer is the NextDirectioner the line search sees: LBFGS itself,
// except that the first direction after a resume first replays the
// checkpoint's iterates through LBFGS, so that its memory is the one the
// uninterrupted run had.
type replayer struct {
	lb   *optimize.LBFGS
	hist []Iterate
}

func (r *replayer) InitDirection(loc *optimize.Location, dir []float64) float64 {
	if len(r.hist) == 0 {
		return r.lb.InitDirection(loc, dir)
	}
	scratch := make([]float64, len(dir))
	for i, it := range r.hist {
		l := &optimize.Location{X: it.X, F: it.F, Gradient: it.G}
		if i == 0 {
			r.lb.InitDirection(l, scratch)
		} else {
			r.lb.NextDirection(l, scratch)
		}
	}
	r.hist = nil
	return r.lb.NextDirection(loc, dir)
}

func (r *replayer) NextDirection(loc *optimize.Location, dir []float64) float64 {
	return r.lb.NextDirection(loc, dir)
}

func resize(s []float64, n int) []float64 {
	if cap(s) < n {
		return make([]float64, n)
	}
	return s[:n]
}
