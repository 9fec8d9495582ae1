package natsbus

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"time"

	"ntkbus/coordinator"
)

// A probe is a pure function of (θ, points, seed, step, j), so any answer
// can be checked bit for bit by computing it again. With Options.Verify
// the backend recomputes, in this process, every sampler identity's first
// accepted batch of the run and a keyed-random fraction of all batches
// after, and compares the bits (samplers of this process, which it vouches
// for, are not checked). The key is drawn per run and never sent, so a
// sampler cannot tell which of its answers will be checked: a forger that
// sends k forged batches after its first is never caught with probability
// (1−Verify)^k. An identity whose answer differs is quarantined for the
// run: the batches it answered in the current call are done again
// elsewhere, what it gave earlier calls of the same base point is
// retracted (Backend.Retracted), and its later answers are refused.
// Results are held back until the call's checks are done, so nothing from
// a quarantined identity reaches the estimate.

// verifier recomputes batches in this process, one at a time, beside the
// dispatch loop.
type verifier struct {
	local *coordinator.Local
	key   [32]byte
	frac  float64
	width int

	jobs chan verifyJob
	out  chan verdict
	stop context.CancelFunc
	wg   sync.WaitGroup
}

type verifyJob struct {
	bt  *batch
	gen int
	w   *coordinator.Work
	got []float64 // the sampler's quotients
}

type verdict struct {
	bt      *batch
	gen     int
	match   bool
	err     error
	seconds float64
}

func newVerifier(frac float64, key []byte, width int) (*verifier, error) {
	if !(frac >= 0 && frac <= 1) {
		return nil, fmt.Errorf("verify fraction %v: want 0 to 1", frac)
	}
	v := &verifier{frac: frac, width: width}
	if len(key) > 0 {
		v.key = sha256.Sum256(key)
	} else if _, err := rand.Read(v.key[:]); err != nil {
		return nil, fmt.Errorf("draw the verification key: %w", err)
	}
	return v, nil
}

// chosen reports whether batch [lo, hi) of step is in the keyed sample.
func (v *verifier) chosen(step uint32, lo, hi int) bool {
	if v.frac <= 0 {
		return false
	}
	var msg [32 + 4 + 8 + 8]byte
	copy(msg[:], v.key[:])
	binary.LittleEndian.PutUint32(msg[32:], step)
	binary.LittleEndian.PutUint64(msg[36:], uint64(lo))
	binary.LittleEndian.PutUint64(msg[44:], uint64(hi))
	h := sha256.Sum256(msg[:])
	u := float64(binary.LittleEndian.Uint64(h[:])>>11) / (1 << 53)
	return u < v.frac
}

// start runs the checks of one call on a goroutine until end. The
// dispatch loop hands it one job at a time and reads every verdict in the
// same select that watches everything else, so neither side waits on the
// other.
func (v *verifier) start(ctx context.Context) {
	ctx, v.stop = context.WithCancel(ctx)
	v.jobs = make(chan verifyJob)
	v.out = make(chan verdict, 1)
	v.wg.Add(1)
	go func() {
		defer v.wg.Done()
		for j := range v.jobs {
			start := time.Now()
			match, err := v.recompute(ctx, j)
			select {
			case v.out <- verdict{bt: j.bt, gen: j.gen, match: match, err: err, seconds: time.Since(start).Seconds()}:
			case <-ctx.Done():
				return
			}
		}
	}()
}

// end stops the goroutine (a check under way is cancelled) and waits.
func (v *verifier) end() {
	if v.jobs == nil {
		return
	}
	close(v.jobs)
	v.stop()
	v.wg.Wait()
	v.jobs, v.out = nil, nil
}

// recompute computes the job's probes in this process and compares them
// with the sampler's, bit for bit.
func (v *verifier) recompute(ctx context.Context, j verifyJob) (bool, error) {
	lo := j.bt.lo
	match := true
	err := v.local.Probes(ctx, j.w, lo, j.bt.hi, func(k int, d []float64) error {
		got := j.got[(k-lo)*v.width : (k-lo+1)*v.width]
		for i, x := range d {
			if math.Float64bits(x) != math.Float64bits(got[i]) {
				match = false
				break
			}
		}
		return nil
	})
	return match, err
}
