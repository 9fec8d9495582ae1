package main

import (
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"ntkbus/model"
)

// problemFlags are the flags that choose a problem and its network.
type problemFlags struct {
	problem    string
	reference  string
	layers     intList
	activation string
	params     paramList
	points     intList
}

// addProblemFlags registers the problem flags on fs.
func addProblemFlags(fs *flag.FlagSet, pf *problemFlags) {
	fs.StringVar(&pf.problem, "problem", "", fmt.Sprintf("problem: one of %v, or a path to a .toml problem file (docs/problems.md)", model.Names()))
	fs.StringVar(&pf.reference, "reference", "", "CSV of solution data, with columns named as the coordinates and the outputs: errors are measured against it, at its points")
	fs.Var(&pf.layers, "layers", "network widths, input to output (default: the paper's)")
	fs.StringVar(&pf.activation, "activation", "", "hidden activation: tanh, sin or softplus (default tanh)")
	fs.Var(&pf.params, "params", "problem constants, e.g. L=1,a=-0.2,c=1 (qtensor), or a problem file's [parameters]")
	fs.Var(&pf.points, "points", "points per block, comma-separated in block order (default: the paper's)")
}

// setup resolves the flags into a setup.
func (p *problemFlags) setup() (*model.Setup, error) {
	if p.problem == "" {
		return nil, badInput("--problem is required (one of %v, or a path to a .toml problem file)", model.Names())
	}
	cfg, err := model.DefaultConfig(p.problem)
	if err != nil {
		return nil, inputError{err}
	}
	if p.reference != "" {
		text, err := model.ReadTableText(p.reference)
		if err != nil {
			return nil, badInput("--reference: %v", err)
		}
		cfg.Reference, cfg.ReferenceName = text, filepath.Base(p.reference)
	}
	if len(p.layers) > 0 {
		cfg.Layers = p.layers
	}
	if p.activation != "" {
		cfg.Activation = p.activation
	}
	for k, v := range p.params {
		if cfg.Params == nil {
			cfg.Params = map[string]float64{}
		}
		cfg.Params[k] = v
	}
	s, err := model.NewSetup(cfg)
	if err != nil {
		return nil, inputError{err}
	}
	if len(p.points) > 0 && len(p.points) != len(s.Problem.Blocks) {
		return nil, badInput("--points has %d counts; problem %s has blocks %v", len(p.points), s.Problem.Name, s.Problem.BlockNames())
	}
	return s, nil
}

func runSnapshot(args []string, out io.Writer) error {
	fs := newFlags("snapshot", "--problem P --seed S --out FILE [flags]")
	var pf problemFlags
	addProblemFlags(fs, &pf)
	seed := fs.Uint64("seed", 1, "seed of θ and of the points")
	step := fs.Uint("step", 0, "draw the points of this training step (resampled problems)")
	outPath := fs.String("out", "", "snapshot file to write (JSON)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *outPath == "" {
		return badInput("--out is required")
	}
	if err := checkStep(*step); err != nil {
		return err
	}
	s, err := pf.setup()
	if err != nil {
		return err
	}
	var counts []int
	if len(pf.points) > 0 {
		counts = pf.points
	}
	c, err := s.DrawPoints(*seed, uint32(*step), counts, nil)
	if err != nil {
		return inputError{err}
	}
	theta := s.InitTheta(*seed)
	if err := model.NewSnapshot(s, theta, c).Write(*outPath); err != nil {
		return err
	}
	fmt.Fprintf(out, "wrote %s: problem %s, p = %d, points %v\n", *outPath, s.Problem.Name, s.NumParams(), c.Counts())
	return nil
}
