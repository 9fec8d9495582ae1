package coordinator

import "context"

// A backend whose samplers are not this process's own hands results on as
// it accepts them, and may learn later that their sender was lying: a
// sampler caught forging (a --verify mismatch, an implausible result) loses
// every result it gave the current base point. The interfaces below say so
// to the caller, which drops those results and computes them again
// (Collect, EstimateAt), so nothing of a caught forger's stays in a step
// or an estimate.

// Retraction is what a backend takes back from one identity: the probes of
// a Work it gave before it was caught forging.
type Retraction struct {
	Identity string   // the sender, as the bus's server vouches for it
	Reason   string   // why it was caught: mismatch or implausible
	Ranges   [][2]int // the probes [lo, hi) it gave
}

// Retractor is a backend that may learn, after it emitted probes of w,
// that the sampler which computed them was caught forging: Retracted
// returns those probes and forgets them. The caller drops them and asks
// for them again. A caller that never asks keeps what a forger gave before
// it was caught.
type Retractor interface {
	Retracted(w *Work) []Retraction
}

// Notifier is a Retractor that says at once, while its Probes call runs,
// that a sender was caught: a run's probe log records the retraction then,
// so that a run killed before the call ends never serves what that sender
// gave. f is called on the goroutine of the Probes call.
type Notifier interface {
	NotifyRetraction(f func(identity, reason string))
}

// Attributor is a backend that can name, while it calls emit, the identity
// whose result it hands on ("" for one it computed itself).
type Attributor interface {
	Sender() string
}

// Holder is a backend that holds results it received until its checks of
// them are done (--verify): Held is how many probes it holds now.
type Holder interface {
	Held() int
}

// Quarantiner is a backend that can be told, between Probes calls, that an
// identity was caught forging earlier in the run (before a resume): it
// gets no more work.
type Quarantiner interface {
	Quarantine(identity, reason string)
}

// unwrapper is a backend around another (a run's probe log).
type unwrapper interface{ Unwrap() Backend }

// HeldBy is how many probes b (or the backend it wraps) holds for checks.
func HeldBy(b Backend) int {
	for b != nil {
		if h, ok := b.(Holder); ok {
			return h.Held()
		}
		u, ok := b.(unwrapper)
		if !ok {
			break
		}
		b = u.Unwrap()
	}
	return 0
}

// Collect computes probes [lo, hi) of w on b and hands each to add once,
// and reports refusals (out of range, duplicate, wrong width, not finite,
// refused by add) in the returned audit. A backend that may take results
// back (a Retractor) has them kept here, by index, until the collection
// ends: what it retracts is dropped and computed again, and only then are
// the results added, in index order, so nothing a caught forger gave
// reaches add and the outcome is the honest one to the bit. Other
// backends' results go to add as they come. inHand, when set, is told how
// many probes are in hand as that changes (it falls when some are taken
// back).
func Collect(ctx context.Context, b Backend, w *Work, lo, hi, width int, add func(j int, d []float64) error, inHand func(n int)) (Audit, error) {
	var audit Audit
	ret, _ := b.(Retractor)
	n := 0
	if ret == nil {
		err := b.Probes(ctx, w, lo, hi, func(j int, d []float64) error {
			if j < lo || j >= hi {
				audit.Reject("refused")
				return nil
			}
			if err := add(j, d); err != nil {
				audit.Reject(RefusalReason(err))
				return nil
			}
			n++
			if inHand != nil {
				inHand(n)
			}
			return nil
		})
		return audit, err
	}
	kept := make([][]float64, hi-lo)
	emit := func(j int, d []float64) error {
		switch {
		case j < lo || j >= hi:
			audit.Reject("refused")
		case kept[j-lo] != nil:
			audit.Reject("duplicate")
		case len(d) != width:
			audit.Reject("length")
		case !finiteAll(d...):
			audit.Reject("non_finite")
		default:
			kept[j-lo] = append([]float64(nil), d...)
			n++
			if inHand != nil {
				inHand(n)
			}
		}
		return nil
	}
	for {
		for _, rg := range missing(kept, 0, hi-lo) {
			if err := b.Probes(ctx, w, lo+rg[0], lo+rg[1], emit); err != nil {
				return audit, err
			}
		}
		dropped := 0
		for _, r := range ret.Retracted(w) {
			for _, rg := range r.Ranges {
				for j := max(rg[0], lo); j < min(rg[1], hi); j++ {
					if kept[j-lo] != nil {
						kept[j-lo] = nil
						dropped++
					}
				}
			}
		}
		if dropped == 0 {
			break
		}
		// Each round takes back what one more identity gave: an identity
		// is caught once, so this ends.
		n -= dropped
		if inHand != nil {
			inHand(n)
		}
	}
	for i, d := range kept {
		if d == nil {
			continue
		}
		if err := add(lo+i, d); err != nil {
			audit.Reject(RefusalReason(err))
		}
		kept[i] = nil
	}
	return audit, nil
}
