package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// Snapshot is a residual frozen at one θ: the problem and network, θ, and
// the collocation points. Its JSON form is
//
//	{"problem": "wave", "layers": [2,500,500,500,1], "theta": [...],
//	 "blocks": [{"name": "pde", "points": [[x, t], ...], "targets": [...]}, ...]}
//
// with the optional fields activation, shift, scale (input standardization)
// and params. Blocks keep the problem's order. Targets are optional (the
// problem's data is used when they are missing); a block with several
// residual components per point lists them point-major. Floats are written
// in the shortest form that reads back to the same bits.
type Snapshot struct {
	Config
	Theta  []float64       `json:"theta"`
	Blocks []SnapshotBlock `json:"blocks"`
}

// SnapshotBlock is one block of a snapshot.
type SnapshotBlock struct {
	Name    string      `json:"name"`
	Points  [][]float64 `json:"points"`
	Targets []float64   `json:"targets,omitempty"`
}

// NewSnapshot freezes θ and the points of a setup.
func NewSnapshot(s *Setup, theta []float64, c *Collocation) *Snapshot {
	snap := &Snapshot{Config: s.Config, Theta: append([]float64(nil), theta...)}
	if !s.Problem.IsNetwork() {
		snap.Layers, snap.Activation, snap.Shift, snap.Scale = nil, "", nil, nil
	}
	if len(snap.Params) == 0 {
		snap.Params = nil
	}
	for _, b := range c.Blocks {
		sb := SnapshotBlock{Name: b.Name, Targets: append([]float64(nil), b.Y...)}
		for i := 0; i < b.Count(); i++ {
			sb.Points = append(sb.Points, append([]float64(nil), b.X[i*b.Dim:(i+1)*b.Dim]...))
		}
		snap.Blocks = append(snap.Blocks, sb)
	}
	return snap
}

// MaxSnapshotBytes bounds a snapshot file: parsing JSON takes several times
// its size in memory. The paper's wave network at its points is 10 MB.
const MaxSnapshotBytes = 512 << 20

// ReadSnapshot reads and parses a snapshot file. Errors name the file and
// what is wrong; Resolve checks the contents.
func ReadSnapshot(path string) (*Snapshot, error) {
	data, err := ReadFileLimit(path, MaxSnapshotBytes)
	if err != nil {
		return nil, fmt.Errorf("read snapshot: %w", err)
	}
	s, err := ParseSnapshot(data)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", path, err)
	}
	return s, nil
}

// ParseSnapshot parses snapshot JSON; unknown fields are errors, so that a
// misspelled field is not silently ignored.
func ParseSnapshot(data []byte) (*Snapshot, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var s Snapshot
	if err := dec.Decode(&s); err != nil {
		return nil, jsonError(data, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the snapshot object")
	}
	return &s, nil
}

// jsonError adds the line and column of a syntax or type error.
func jsonError(data []byte, err error) error {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return errors.New("not valid JSON: the file ends before the snapshot object does")
	}
	if off < 0 {
		return fmt.Errorf("not a valid snapshot: %w", err)
	}
	line, col := 1, 1
	for _, c := range data[:min(int(off), len(data))] {
		if c == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	msg := err.Error()
	if bytes.Contains(data, []byte("NaN")) || bytes.Contains(data, []byte("Infinity")) {
		msg += " (JSON has no NaN or Infinity: every number must be finite)"
	}
	return fmt.Errorf("not valid JSON at line %d, column %d: %s", line, col, msg)
}

// Resolve validates the snapshot and returns its setup, points and θ.
func (s *Snapshot) Resolve() (*Setup, *Collocation, []float64, error) {
	if s.Problem == "" {
		return nil, nil, nil, errors.New(`missing "problem"`)
	}
	setup, err := NewSetup(s.Config)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := setup.CheckTheta(s.Theta); err != nil {
		return nil, nil, nil, fmt.Errorf("problem %s: %w", s.Problem, err)
	}
	p := setup.Problem
	if len(s.Blocks) != len(p.Blocks) {
		return nil, nil, nil, fmt.Errorf("problem %s has blocks %v, the snapshot has %d", p.Name, p.BlockNames(), len(s.Blocks))
	}
	c := &Collocation{Blocks: make([]BlockPoints, len(s.Blocks))}
	for b, sb := range s.Blocks {
		def := &p.Blocks[b]
		if sb.Name != def.Name {
			return nil, nil, nil, fmt.Errorf("problem %s: block %d is %q, want %q (blocks are %v, in that order)", p.Name, b, sb.Name, def.Name, p.BlockNames())
		}
		bp := &c.Blocks[b]
		bp.Name, bp.Dim = sb.Name, p.Dim
		bp.X = make([]float64, 0, len(sb.Points)*p.Dim)
		for i, pt := range sb.Points {
			if len(pt) != p.Dim {
				return nil, nil, nil, fmt.Errorf("block %s: point %d has %d coordinates, problem %s needs %d (%v)", sb.Name, i, len(pt), p.Name, p.Dim, p.Coords)
			}
			bp.X = append(bp.X, pt...)
		}
		bp.Y = make([]float64, len(sb.Points)*def.Components)
		if sb.Targets == nil {
			p.fillTargets(b, bp)
		} else {
			if len(sb.Targets) != len(bp.Y) {
				return nil, nil, nil, fmt.Errorf("block %s: %d targets for %d points with %d components each", sb.Name, len(sb.Targets), len(sb.Points), def.Components)
			}
			copy(bp.Y, sb.Targets)
		}
	}
	if err := p.Check(c); err != nil {
		return nil, nil, nil, err
	}
	return setup, c, s.Theta, nil
}

// Write writes the snapshot as JSON to path (via a temporary file, so a
// crash never leaves half a snapshot).
func (s *Snapshot) Write(path string) error {
	for i, v := range s.Theta {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("write snapshot %s: theta[%d] = %v is not finite", path, i, v)
		}
	}
	data, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("write snapshot %s: %w", path, err)
	}
	return WriteFileAtomic(path, append(data, '\n'))
}

// WriteFileAtomic writes data to path through a temporary file in the same
// directory and a rename.
func WriteFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
