package coordinator

import (
	"errors"
	"maps"
)

// Audit counts what a backend refused and what it checked: the results it
// never averaged, by reason (malformed, other_run, stale_step, range,
// length, non_finite, duplicate, time, mismatch, quarantined, ...), and
// the checks of --verify: batches recomputed in the coordinator and
// compared bit for bit, those whose bits differed, and the sampler
// identities quarantined for a mismatch or an implausible result. An
// identity is what the bus's server vouches for (a credential), never a
// name a sampler gives itself.
type Audit struct {
	Rejected    map[string]int64
	Verified    int64
	Mismatches  int64
	Quarantined int64
	// Quarantines names the quarantined identities, with the reason.
	Quarantines map[string]string
	// RefusedFrom counts refused messages by the identity that sent them
	// (duplicates and stale answers, which honest samplers send, aside).
	RefusedFrom map[string]int64
}

// MaxAuditIdentities bounds the identities an audit names (in Quarantines
// and in RefusedFrom): a deployment has one per sampler credential.
const MaxAuditIdentities = 256

// Total is the number of rejected results.
func (a Audit) Total() int64 {
	var n int64
	for _, v := range a.Rejected {
		n += v
	}
	return n
}

// Reject counts one refusal.
func (a *Audit) Reject(reason string) {
	if a.Rejected == nil {
		a.Rejected = map[string]int64{}
	}
	a.Rejected[reason]++
}

// Add adds b's counts to a.
func (a *Audit) Add(b Audit) {
	for k, v := range b.Rejected {
		if v != 0 {
			if a.Rejected == nil {
				a.Rejected = map[string]int64{}
			}
			a.Rejected[k] += v
		}
	}
	a.Verified += b.Verified
	a.Mismatches += b.Mismatches
	a.Quarantined += b.Quarantined
	for id, why := range b.Quarantines {
		if a.Quarantines == nil {
			a.Quarantines = map[string]string{}
		}
		if _, ok := a.Quarantines[id]; ok || len(a.Quarantines) < MaxAuditIdentities {
			a.Quarantines[id] = why
		}
	}
	for id, v := range b.RefusedFrom {
		if v != 0 {
			if a.RefusedFrom == nil {
				a.RefusedFrom = map[string]int64{}
			}
			if _, ok := a.RefusedFrom[id]; ok || len(a.RefusedFrom) < MaxAuditIdentities {
				a.RefusedFrom[id] += v
			}
		}
	}
}

// Since is what a counted after an earlier reading b of the same counters.
func (a Audit) Since(b Audit) Audit {
	d := Audit{Verified: a.Verified - b.Verified, Mismatches: a.Mismatches - b.Mismatches, Quarantined: a.Quarantined - b.Quarantined}
	for k, v := range a.Rejected {
		if v -= b.Rejected[k]; v != 0 {
			d.Reject(k)
			d.Rejected[k] = v
		}
	}
	for id, why := range a.Quarantines {
		if _, before := b.Quarantines[id]; !before {
			if d.Quarantines == nil {
				d.Quarantines = map[string]string{}
			}
			d.Quarantines[id] = why
		}
	}
	for id, v := range a.RefusedFrom {
		if v -= b.RefusedFrom[id]; v != 0 {
			if d.RefusedFrom == nil {
				d.RefusedFrom = map[string]int64{}
			}
			d.RefusedFrom[id] = v
		}
	}
	return d
}

// Clone is a copy that shares nothing with a.
func (a Audit) Clone() Audit {
	a.Rejected = maps.Clone(a.Rejected)
	a.Quarantines = maps.Clone(a.Quarantines)
	a.RefusedFrom = maps.Clone(a.RefusedFrom)
	return a
}

// Auditor is a backend that keeps an Audit of what it refused and checked
// over its lifetime.
type Auditor interface{ Audit() Audit }

// AuditOf reads b's audit; a backend that refuses nothing has an empty one.
func AuditOf(b Backend) Audit {
	if a, ok := b.(Auditor); ok {
		return a.Audit()
	}
	return Audit{}
}

// RefusalReason names why Accumulator.Add refused a result, with the
// transport's names for the same faults.
func RefusalReason(err error) string {
	switch {
	case errors.Is(err, ErrDuplicate):
		return "duplicate"
	case errors.Is(err, ErrLength):
		return "length"
	case errors.Is(err, ErrNonFinite):
		return "non_finite"
	}
	return "refused"
}
