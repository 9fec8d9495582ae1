package optim

import (
	"fmt"
	"math"
)

// Schedule is an exponential step decay: the rate is LR·Decay^⌊t/Every⌋
// (Every = 0: constant).
type Schedule struct {
	LR    float64 `json:"lr"`
	Decay float64 `json:"decay"`
	Every int     `json:"every"`
}

// At is the rate at step t.
func (s Schedule) At(t int) float64 {
	if s.Every <= 0 || s.Decay == 1 {
		return s.LR
	}
	return s.LR * math.Pow(s.Decay, float64(t/s.Every))
}

func (s Schedule) validate() error {
	if !(s.LR > 0) || math.IsInf(s.LR, 0) {
		return fmt.Errorf("learning rate %v: want a positive number", s.LR)
	}
	if s.Every > 0 && !(s.Decay > 0 && s.Decay <= 1) {
		return fmt.Errorf("decay %v: want a factor in (0, 1]", s.Decay)
	}
	return nil
}
