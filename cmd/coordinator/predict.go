package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"

	"ntkbus/model"
)

// runPredict writes the network's outputs at a user's points: how a trained
// PINN (a run's final.json is a snapshot) is taken elsewhere.
func runPredict(args []string, out io.Writer) error {
	fs := newFlags("predict", "--snapshot FILE --points FILE.csv [--out FILE.csv] [--residuals]")
	snapPath := fs.String("snapshot", "", "snapshot of the network, such as a trained run's final.json")
	ptsPath := fs.String("points", "", "CSV of points: a header naming the coordinates (other columns are ignored), then a row per point")
	outPath := fs.String("out", "", "CSV to write: the coordinates, one column per output and with --residuals residual_<block>[_<component>] (default: standard output)")
	withRes := fs.Bool("residuals", false, "add every block's residual components at the points (the block's equation, meaningful where the block's points lie)")
	maxMem := fs.Int64("max-memory", model.DefaultMaxMemory, "bytes the evaluation may use; the points go through in chunks that fit")
	var lf logFlags
	lf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *snapPath == "" || *ptsPath == "" {
		return badInput("--snapshot and --points are required")
	}
	snap, err := model.ReadSnapshot(*snapPath)
	if err != nil {
		return inputError{err}
	}
	setup, _, theta, err := snap.Resolve()
	if err != nil {
		return inputError{fmt.Errorf("snapshot %s: %w", *snapPath, err)}
	}
	p := setup.Problem
	table, err := model.ReadTable(*ptsPath)
	if err != nil {
		return badInput("--points: %v", err)
	}
	idx, err := table.Columns(p.Coords, "problem "+p.Name)
	if err != nil {
		return badInput("--points %s: %v", *ptsPath, err)
	}
	x := table.Select(idx)
	n := table.Rows() // ParseTable refused non-finite values

	// The columns.
	header := append(append([]string(nil), p.Coords...), p.OutputColumns()...)
	if *withRes {
		for _, b := range p.Blocks {
			if b.Components == 1 {
				header = append(header, "residual_"+b.Name)
				continue
			}
			for c := 1; c <= b.Components; c++ {
				header = append(header, fmt.Sprintf("residual_%s_%d", b.Name, c))
			}
		}
	}
	chunk, err := predictChunk(setup, n, *withRes, *maxMem)
	if err != nil {
		return inputError{err}
	}

	w := out
	var tmp *os.File
	if *outPath != "" {
		if tmp, err = os.Create(*outPath + ".tmp"); err != nil {
			return inputError{fmt.Errorf("--out: %w", err)}
		}
		defer func() {
			if tmp != nil {
				tmp.Close()
				os.Remove(tmp.Name())
			}
		}()
		w = tmp
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	writeRow := func(cells []string) {
		for i, c := range cells {
			if i > 0 {
				bw.WriteByte(',')
			}
			bw.WriteString(c)
		}
		bw.WriteByte('\n')
	}
	writeRow(header)

	log := lf.logger(os.Stderr)
	bar := newProgress(os.Stderr, log, "points", n)
	defer bar.finish()
	var ev model.Evaluator
	u := make([]float64, chunk*p.Outputs)
	var r []float64
	cells := make([]string, len(header))
	num := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		xs := x[lo*p.Dim : hi*p.Dim]
		m := hi - lo
		setup.Predict(theta, xs, u[:m*p.Outputs])
		var lay *model.Layout
		if *withRes {
			c := &model.Collocation{}
			for b, def := range p.Blocks {
				c.Blocks = append(c.Blocks, model.BlockPoints{Name: def.Name, Dim: p.Dim, X: xs, Y: p.Targets(b, xs)})
			}
			if ev == nil {
				if ev, err = setup.NewEvaluator(c, model.Options{MaxMemory: *maxMem}); err != nil {
					return inputError{err}
				}
			} else if err := ev.SetPoints(c); err != nil {
				return inputError{err}
			}
			lay = ev.Layout()
			if cap(r) < lay.N {
				r = make([]float64, lay.N)
			}
			r = r[:lay.N]
			ev.Residual(theta, r)
		}
		for i := 0; i < m; i++ {
			k := 0
			for j := 0; j < p.Dim; j++ {
				cells[k] = num(xs[i*p.Dim+j])
				k++
			}
			for o := 0; o < p.Outputs; o++ {
				cells[k] = num(u[i*p.Outputs+o])
				k++
			}
			if lay != nil {
				for _, sp := range lay.Blocks {
					for c := 0; c < sp.Components; c++ {
						cells[k] = num(r[sp.Off+i*sp.Components+c])
						k++
					}
				}
			}
			writeRow(cells)
		}
		bar.update(hi, "")
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write predictions: %w", err)
	}
	bar.finish()
	if tmp != nil {
		if err := tmp.Close(); err != nil {
			return fmt.Errorf("write %s: %w", *outPath, err)
		}
		if err := os.Rename(tmp.Name(), *outPath); err != nil {
			return fmt.Errorf("write %s: %w", *outPath, err)
		}
		tmp = nil
		fmt.Fprintf(out, "wrote %s: %d points, columns %v\n", *outPath, n, header)
	}
	return nil
}

// predictChunk is how many points go through at once: as many as fit the
// memory limit (the residuals need an evaluator over every block), at most
// 8192.
func predictChunk(s *model.Setup, n int, residuals bool, limit int64) (int, error) {
	if limit <= 0 {
		limit = model.DefaultMaxMemory
	}
	p := s.Problem
	chunk := 8192
	for ; chunk >= 1; chunk /= 2 {
		var need float64
		if residuals {
			counts := make([]int, len(p.Blocks))
			for b := range counts {
				counts[b] = chunk
			}
			var err error
			if need, err = s.MemoryNeed(counts, model.Memory{Evaluators: 1}); err != nil {
				return 0, err
			}
		} else if w := s.MaxWidth(); w > 0 {
			need = 8 * float64(chunk) * float64(3*w+p.Dim+p.Outputs)
		}
		if need <= float64(limit) {
			return chunk, nil
		}
	}
	return 0, fmt.Errorf("one point needs more than the memory limit of %d bytes: raise --max-memory", limit)
}
