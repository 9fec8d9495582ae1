package optim

import (
	"math"
	"strconv"
)

// Record is what one step of a method did. A method fills the fields of
// its Columns.
type Record struct {
	LR            float64 // the rate (gd, adam) or the first η the line search tries
	Mu            float64 // damping of this step's solve
	Eta           float64 // step length taken, or the last one tried when rejected
	SolveResidual float64 // ‖(K̃ + μI)z − R̃‖ / ‖R̃‖ with the exact K̃
	Predicted     float64 // Φ's decrease predicted by the Gauss–Newton model at Eta
	Actual        float64 // Φ's actual decrease at Eta
	Rejected      bool    // θ was left unchanged: no η passed the line search
	Evals         int     // evaluations of Φ by the line search
	CGIterations  int     // products with K̃ in the CG solve (cg solver)
	// ColumnSeconds is the wall-clock time spent computing or waiting for
	// the step's probe columns (logged, not in train.csv: it is no part of
	// the run's numbers).
	ColumnSeconds float64
	// KernelSeconds, SolveSeconds and SearchSeconds are the wall-clock
	// time of the step's parts (logged, not in train.csv): the exact K or
	// J (or K's diagonal), the solve with the passes for v and K̃z, and the
	// line search's evaluations of Φ.
	KernelSeconds, SolveSeconds, SearchSeconds float64
}

// NaturalColumns are train.csv's columns of a natural-gradient step.
var NaturalColumns = []string{"mu", "eta", "solve_residual", "predicted_decrease", "actual_decrease", "step_rejected", "line_search_evals", "cg_iterations"}

// AppendCells appends, for each of the columns, a comma and the record's
// value in it (empty for a column the record does not know).
func (r *Record) AppendCells(b []byte, cols []string) []byte {
	for _, c := range cols {
		b = append(b, ',')
		switch c {
		case "mu":
			b = appendFloat(b, r.Mu)
		case "eta":
			b = appendFloat(b, r.Eta)
		case "solve_residual":
			b = appendFloat(b, r.SolveResidual)
		case "predicted_decrease":
			b = appendFloat(b, r.Predicted)
		case "actual_decrease":
			b = appendFloat(b, r.Actual)
		case "step_rejected":
			if r.Rejected {
				b = append(b, '1')
			} else {
				b = append(b, '0')
			}
		case "line_search_evals":
			b = strconv.AppendInt(b, int64(r.Evals), 10)
		case "cg_iterations":
			b = strconv.AppendInt(b, int64(r.CGIterations), 10)
		}
	}
	return b
}

// LogArgs are the record's key/value pairs for a log line, for the
// columns given.
func (r *Record) LogArgs(cols []string) []any {
	var args []any
	for _, c := range cols {
		switch c {
		case "mu":
			args = append(args, c, r.Mu)
		case "eta":
			args = append(args, c, r.Eta)
		case "solve_residual":
			args = append(args, c, r.SolveResidual)
		case "predicted_decrease":
			args = append(args, c, r.Predicted)
		case "actual_decrease":
			args = append(args, c, r.Actual)
		case "line_search_evals":
			args = append(args, c, r.Evals)
		case "cg_iterations":
			if r.CGIterations > 0 {
				args = append(args, c, r.CGIterations)
			}
		}
	}
	if r.ColumnSeconds > 0 {
		args = append(args, "columns_seconds", r.ColumnSeconds)
	}
	if r.KernelSeconds+r.SolveSeconds+r.SearchSeconds > 0 {
		args = append(args, "kernel_seconds", r.KernelSeconds, "solve_seconds", r.SolveSeconds, "search_seconds", r.SearchSeconds)
	}
	return args
}

func appendFloat(b []byte, v float64) []byte {
	if math.IsNaN(v) {
		return b
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}
