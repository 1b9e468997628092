//go:build race

package scheduler_test

// raceEnabled is set when the tests run under the race detector, which
// makes the property test about eight times slower.
const raceEnabled = true
