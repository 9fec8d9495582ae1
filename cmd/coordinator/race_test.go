//go:build race

package main

// raceEnabled skips the runs of the paper's wave network under the race
// detector, which makes them minutes long; the bus's own tests run its
// goroutines under it.
const raceEnabled = true
