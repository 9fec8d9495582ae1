//go:build race

package sketch

// raceEnabled skips the statistical tests (hundreds of sketches each) under
// the race detector, which slows them thirtyfold and has nothing to find in
// single-goroutine linear algebra.
const raceEnabled = true
