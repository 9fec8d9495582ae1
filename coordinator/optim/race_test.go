//go:build race

package optim_test

// raceEnabled skips the trainings that take a minute without the race
// detector and ten with it; they check numbers, not goroutines.
const raceEnabled = true
