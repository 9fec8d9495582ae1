//go:build race

package coordinator

// raceEnabled skips the sketches' statistical test under the race
// detector: it draws hundreds of sketches on one goroutine each.
const raceEnabled = true
