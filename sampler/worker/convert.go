package worker

import (
	"fmt"

	"ntkbus/model"
	"ntkbus/protocol"
	"ntkbus/sampler"
)

// ProblemSpec is the wire form of a model configuration: a problem file's
// text and points files travel with it, its reference data does not
// (samplers measure no errors).
func ProblemSpec(c model.Config) protocol.ProblemSpec {
	return protocol.ProblemSpec{
		Name: c.Problem, Layers: c.Layers, Activation: c.Activation,
		InputShift: c.Shift, InputScale: c.Scale, Params: c.Params,
		Text: c.Text, Files: c.Files,
	}
}

// Config is the model configuration of a wire problem spec.
func Config(p protocol.ProblemSpec) model.Config {
	return model.Config{
		Problem: p.Name, Layers: p.Layers, Activation: p.Activation,
		Shift: p.InputShift, Scale: p.InputScale, Params: p.Params,
		Text: p.Text, Files: p.Files,
	}
}

// ProbeSettings is the wire form of probe settings.
func ProbeSettings(s sampler.Settings) protocol.ProbeSettings {
	return protocol.ProbeSettings{
		Seed: s.Seed, Kind: s.Kind.String(), Quotient: s.Quotient.String(),
		Dt: s.Dt, Epsilon: s.Epsilon, Allocation: s.Allocation.String(),
	}
}

// Settings reads wire probe settings.
func Settings(p protocol.ProbeSettings) (sampler.Settings, error) {
	s := sampler.Settings{Seed: p.Seed, Dt: p.Dt, Epsilon: p.Epsilon}
	var err error
	if s.Kind, err = sampler.ParseKind(p.Kind); err != nil {
		return s, err
	}
	if s.Quotient, err = sampler.ParseQuotient(p.Quotient); err != nil {
		return s, err
	}
	if s.Allocation, err = sampler.ParseAllocation(p.Allocation); err != nil {
		return s, err
	}
	return s, s.Validate()
}

// BlockPoints is the wire form of explicit collocation points.
func BlockPoints(c *model.Collocation) []protocol.BlockPoints {
	out := make([]protocol.BlockPoints, len(c.Blocks))
	for i, b := range c.Blocks {
		out[i] = protocol.BlockPoints{Name: b.Name, Dim: b.Dim, Points: b.X, Targets: b.Y}
	}
	return out
}

// Points builds a snapshot's collocation: its explicit points, or the
// problem's points drawn from the seed for the snapshot's step. dst is reused.
func Points(setup *model.Setup, snap *protocol.Snapshot, dst *model.Collocation) (*model.Collocation, error) {
	pc := &snap.Points
	if len(pc.Blocks) == 0 {
		if len(pc.Counts) != len(setup.Problem.Blocks) {
			return nil, fmt.Errorf("%d point counts for the %d blocks of %s", len(pc.Counts), len(setup.Problem.Blocks), setup.Problem.Name)
		}
		if snap.Step > 1<<32-1 {
			return nil, fmt.Errorf("step %d beyond the generator's 32-bit steps", snap.Step)
		}
		return setup.DrawPoints(pc.Seed, uint32(snap.Step), pc.Counts, dst)
	}
	if dst == nil {
		dst = &model.Collocation{}
	}
	dst.Blocks = dst.Blocks[:0]
	for _, b := range pc.Blocks {
		dst.Blocks = append(dst.Blocks, model.BlockPoints{Name: b.Name, Dim: b.Dim, X: b.Points, Y: b.Targets})
	}
	// Blocks without targets take the problem's data.
	p := setup.Problem
	for i := range dst.Blocks {
		b := &dst.Blocks[i]
		if len(b.Y) == 0 && b.Count() > 0 && i < len(p.Blocks) && b.Dim == p.Dim {
			b.Y = p.Targets(i, b.X)
		}
	}
	if err := p.Check(dst); err != nil {
		return nil, err
	}
	return dst, nil
}
