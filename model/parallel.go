package model

import "runtime"

// The element-wise work of a layer (the activation and its derivatives over
// the streams, the products of the input and output layers) is split over
// up to GOMAXPROCS goroutines by contiguous ranges of points or rows. Every
// value is computed by the same operations whatever the split, so the
// results are the same bits on any number of threads; sums across points
// stay on the calling goroutine.

// maxParts bounds the goroutines one evaluator uses.
const maxParts = 8

// minSplit is the least work (values touched) worth one more goroutine.
const minSplit = 1 << 15

type jobKind int

const (
	jobActivate jobKind = iota
	jobActivateBackward
	jobActivateJVP
	jobProduct
	jobInputCotangent
	jobGEMM
)

// job is the element-wise work being split: what to do, over how many
// points or rows, and its operands.
type job struct {
	kind  jobKind
	n     int // points or rows
	l     int
	x, y  []float64
	w     []float64
	theta []float64 // jobActivate: the parameters (biases, and W_L with out)
	out   []float64 // jobActivate: the output layer's rows (rows × O), made per point
	cache bool      // jobActivate: keep what Backward and JVP need; jobProduct: accumulate
	sums  bool      // jobActivateBackward: add the points to their chunks' sums
}

// helpers are an evaluator's helper goroutines. They hold no reference to
// the evaluator between tasks, so an evaluator no longer used is collected
// and a cleanup stops its helpers.
type helpers struct {
	tasks chan task
	done  chan struct{}
	n     int
}

type task struct {
	e           *pinn
	part, parts int
}

func (h *helpers) loop() {
	for t := range h.tasks {
		t.e.runPart(t.part, t.parts)
		h.done <- struct{}{}
	}
}

// scratch is one part's work memory for one point: σ', σ” and σ”', one
// quadratic form, the point's pre-activation and output rows when no layer
// matrix holds them (a and h, streams × widest layer), and row slices.
type scratch struct {
	t1, t2, t3, tq      []float64
	a, h                []float64
	rowsA, rowsH, rowsX [][]float64
}

// split runs j over its n points or rows, in parts on the helpers when the
// work is large enough and GOMAXPROCS allows.
func (e *pinn) split(j job, width int) {
	e.job = j
	parts := e.splitParts(j.n, width)
	if parts <= 1 {
		e.runPart(0, 1)
		return
	}
	if e.help == nil {
		e.help = &helpers{tasks: make(chan task), done: make(chan struct{})}
		runtime.AddCleanup(e, func(h *helpers) { close(h.tasks) }, e.help)
	}
	for e.help.n < parts-1 {
		go e.help.loop()
		e.help.n++
	}
	for p := 1; p < parts; p++ {
		e.help.tasks <- task{e, p, parts}
	}
	e.runPart(0, parts)
	for p := 1; p < parts; p++ {
		<-e.help.done
	}
}

// splitParts is the number of parts for n points or rows of width values.
func (e *pinn) splitParts(n, width int) int {
	return min(runtime.GOMAXPROCS(0), maxParts, max(1, n*width/minSplit))
}

// runPart does part p of parts of the current job.
func (e *pinn) runPart(p, parts int) {
	j := &e.job
	lo, hi := j.n*p/parts, j.n*(p+1)/parts
	switch j.kind {
	case jobActivate:
		lo, hi = e.pointAt(p, parts, activateCost), e.pointAt(p+1, parts, activateCost)
	case jobActivateJVP:
		lo, hi = e.pointAt(p, parts, 0), e.pointAt(p+1, parts, 0)
	case jobActivateBackward:
		lo, hi = e.chunkAt(p, parts), e.chunkAt(p+1, parts)
	}
	switch j.kind {
	case jobActivate:
		e.activateRange(j, lo, hi, &e.scr[p])
	case jobActivateBackward:
		e.activateBackwardRange(j, lo, hi, &e.scr[p])
	case jobActivateJVP:
		e.activateJVPRange(j.l, j.x, j.y, lo, hi, &e.scr[p])
	case jobProduct:
		e.productRows(j.l, j.w, j.x, j.y, j.cache, lo, hi)
	case jobInputCotangent:
		e.inputCotangentRows(j.l, j.w, j.x, j.y, lo, hi)
	case jobGEMM:
		e.runTasks()
	}
}

// cost is the relative work of one of g's points in the element-wise
// passes: a row per stream and a row per term of its operators' quadratic
// forms, and extra rows' worth per point. A point of the wave's PDE block
// costs six times one of its boundary blocks in a backward pass: parts of
// equal points would leave one thread with most of the work.
func (g *group) cost(extra int) int {
	c := g.ns + extra
	for _, t := range g.ops {
		c += len(t)
	}
	return c
}

// activateCost is cost's extra for the activation pass: σ at the value row
// (tanh) costs about three rows of the other streams' products (measured
// on the wave network).
const activateCost = 3

// costBefore is the cost of the points [0, i).
func (e *pinn) costBefore(i, extra int) int {
	c := 0
	for gi := range e.groups {
		g := &e.groups[gi]
		c += min(max(i-g.first, 0), g.n) * g.cost(extra)
	}
	return c
}

// pointAt is the first point of part p of parts, cut so that the parts'
// points cost about the same. Which goroutine computes a point changes no
// bit.
func (e *pinn) pointAt(p, parts, extra int) int {
	if p >= parts {
		return e.npts
	}
	target := e.costBefore(e.npts, extra) * p / parts
	for gi := range e.groups {
		g := &e.groups[gi]
		c := g.n * g.cost(extra)
		if target < c {
			return g.first + (target+g.cost(extra)-1)/g.cost(extra)
		}
		target -= c
	}
	return e.npts
}

// chunkAt is the first chunk of points of part p of parts for a backward
// pass: the first that starts at or after the cost's share.
func (e *pinn) chunkAt(p, parts int) int {
	nc := len(e.chunks) - 1
	if p >= parts {
		return nc
	}
	target := e.costBefore(e.npts, 0) * p / parts
	for c := range nc {
		if e.costBefore(e.chunks[c], 0) >= target {
			return c
		}
	}
	return nc
}

// pointRange returns the points [i0, i1) of group g inside the global
// point range [lo, hi).
func (g *group) pointRange(lo, hi int) (i0, i1 int) {
	return max(lo-g.first, 0), min(hi-g.first, g.n)
}
