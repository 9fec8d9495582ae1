package coordinator

import (
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"

	"ntkbus/model"
)

// StopRules end a run before its last step, once it has converged. They
// change when a run ends, never the numbers of a step, so they are no part
// of its fingerprint and a resumed run may change them.
type StopRules struct {
	// TargetError ends the run at the first θ_t (t > 0) whose relative L²
	// error (at an error evaluation, every ErrorEvery steps) is at most
	// this: θ_t is its final θ (0: no target).
	TargetError float64 `json:"target_error,omitempty"`
	// TargetLoss stops the run after a step whose loss (Σ_b mean squared
	// residual, train.csv's loss) is at most this (0: no target).
	TargetLoss float64 `json:"target_loss,omitempty"`
	// StallSteps stops the run when the loss has not fallen below
	// (1 − StallDecrease) times its last reference for this many steps;
	// each such fall makes the loss the new reference (0: never).
	StallSteps    int     `json:"stall_steps,omitempty"`
	StallDecrease float64 `json:"stall_decrease,omitempty"`
}

// The reasons a run ends (summary.json's stop_reason).
const (
	StopSteps       = "steps"        // it ran all its steps
	StopTargetError = "target_error" // TargetError reached
	StopTargetLoss  = "target_loss"  // TargetLoss reached
	StopStall       = "stall"        // the loss stopped falling
)

// MaxStallSteps bounds StallSteps as config.json may give it.
const MaxStallSteps = 1 << 30

// Validate reports rules that cannot be, with what to change.
func (s StopRules) Validate() error {
	for _, c := range []struct {
		name string
		v    float64
	}{{"target error", s.TargetError}, {"target loss", s.TargetLoss}} {
		if c.v < 0 || math.IsNaN(c.v) || math.IsInf(c.v, 0) {
			return fmt.Errorf("%s %v: want a number ≥ 0 (0: none)", c.name, c.v)
		}
	}
	if s.StallSteps < 0 || s.StallSteps > MaxStallSteps {
		return fmt.Errorf("stall steps %d: want 0 (never) to %d", s.StallSteps, MaxStallSteps)
	}
	if s.StallSteps > 0 && !(s.StallDecrease > 0 && s.StallDecrease < 1) {
		return fmt.Errorf("stall decrease %v: want a fraction in (0, 1)", s.StallDecrease)
	}
	return nil
}

// stopState is the stall rule's memory, and why a run ended early: part
// of a checkpoint.
type stopState struct {
	Ref    float64 // the loss every later one is measured against (0: none yet)
	Since  int     // the step at which Ref was set
	Reason string  // why the run ended before its configured steps ("": it did not)
}

func (s *stopState) check(step int) error {
	switch {
	case s.Ref < 0 || math.IsNaN(s.Ref) || math.IsInf(s.Ref, 0):
		return fmt.Errorf("stall reference loss %v", s.Ref)
	case s.Since < 0 || s.Since > step:
		return fmt.Errorf("stall reference at step %d, the checkpoint is at step %d", s.Since, step)
	}
	switch s.Reason {
	case "", StopTargetError, StopTargetLoss, StopStall:
		return nil
	}
	return fmt.Errorf("stop reason %q", s.Reason)
}

// stop applies the loss rules after step rec.Step and returns the reason
// to end the run there, or "". (The error target is checked before a
// step, on the θ whose error was evaluated: Execute.)
func (r *Run) stop(rec *StepRecord) string {
	rules, st := r.Config.Stop, &r.stopState
	if rules.TargetLoss > 0 && rec.Loss <= rules.TargetLoss {
		return StopTargetLoss
	}
	if rules.StallSteps > 0 {
		if st.Ref == 0 || rec.Loss < (1-rules.StallDecrease)*st.Ref {
			st.Ref, st.Since = rec.Loss, rec.Step
		}
		if rec.Step-st.Since >= rules.StallSteps {
			return StopStall
		}
	}
	return ""
}

// endEarly makes step t the run's last: config.json's steps become t+1,
// so the run is finished and "train --resume DIR --steps N" extends it.
func (r *Run) endEarly(t int, reason string) error {
	r.stopState.Reason = reason
	r.Config.Train.Steps = t + 1
	// config.json as written, with only its length changed (r.Config has
	// defaults filled in that it does not hold).
	cfg, err := ReadRunConfig(r.Dir)
	if err != nil {
		return err
	}
	cfg.Train.Steps = t + 1
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return model.WriteFileAtomic(filepath.Join(r.Dir, configFile), append(data, '\n'))
}

// SetStopRules replaces the stop rules in the config.json of the run in
// dir, after checking its checkpoint (they change no step's numbers).
func SetStopRules(dir string, rules StopRules) error {
	if err := rules.Validate(); err != nil {
		return err
	}
	st, err := ReadRun(dir)
	if err != nil {
		return err
	}
	cfg := st.Config
	cfg.Stop = rules
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return model.WriteFileAtomic(filepath.Join(dir, configFile), append(data, '\n'))
}
