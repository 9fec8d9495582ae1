package protocol

import (
	"strings"
	"testing"
)

// A points map that repeats its "blocks" key cannot add up more blocks
// than one key may hold: the bound is on the total, and the decoder's
// allocations stay within the fuzzers' bound for the message's size.
func TestRepeatedBlocksKeysAreBounded(t *testing.T) {
	var c Codec
	w := &c.w
	w.begin(8)
	w.int("v", Version)
	w.str("run", "r")
	w.int("step", 1)
	w.key("problem")
	w.enc.EncodeMapLen(1)
	w.str("name", "x")
	w.floats("theta", []float64{1})
	w.key("points")
	const reps = 200
	w.enc.EncodeMapLen(reps)
	for range reps {
		w.key("blocks")
		w.enc.EncodeArrayLen(64)
		for range 64 {
			w.enc.EncodeMapLen(3)
			w.str("name", "b")
			w.int("dim", 1)
			w.key("pts")
			w.enc.EncodeNil()
		}
	}
	w.key("probe")
	w.enc.EncodeMapLen(0)
	w.int("width", 1)
	data := w.out(nil)
	var s Snapshot
	err := c.UnmarshalSnapshot(data, &s)
	if err == nil || !strings.Contains(err.Error(), "blocks") {
		t.Fatalf("%d blocks under repeated keys: err = %v, want a refusal", len(s.Points.Blocks), err)
	}
	if got, bound := decodeAllocs(data), allocBound(len(data)); got > bound {
		t.Errorf("decoding allocated %d bytes, over the bound %d for %d bytes", got, bound, len(data))
	}
}
