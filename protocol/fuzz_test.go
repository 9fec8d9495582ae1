package protocol

import (
	"testing"
)

// The decoders never panic, whatever the input; no decode allocates more
// than allocBound of its input; what decodes re-encodes to something that
// decodes to the same message; validation never panics.

var fuzzLimits = Limits{MaxSnapshot: DefaultMaxSnapshot, MaxPayload: 1 << 20}

// checkAllocs fails when decoding data allocates beyond allocBound. It
// reads the runtime's counters, so it runs on a sample of the inputs.
func checkAllocs(t *testing.T, data []byte) {
	t.Helper()
	if len(data)%7 != 0 { // a cheap, input-keyed sample
		return
	}
	if n := decodeAllocs(data); n > allocBound(len(data)) {
		t.Fatalf("%d bytes allocated decoding %d bytes of input", n, len(data))
	}
}

func FuzzUnmarshalResult(f *testing.F) {
	var c Codec
	f.Add(c.MarshalResult(nil, sampleResult()))
	f.Add([]byte{0x80})
	f.Add([]byte{0xdf, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		checkAllocs(t, data)
		var c Codec
		var m Result
		if err := c.UnmarshalResult(data, &m); err != nil {
			return
		}
		m.Validate(ResultExpect{Run: m.Run, Step: m.Step, Width: m.Width, Lo: m.Lo, Probes: m.Hi})
		var back Result
		if err := c.UnmarshalResult(c.MarshalResult(nil, &m), &back); err != nil {
			t.Fatalf("re-encoded result does not decode: %v", err)
		}
		if !bitsEqual(back.D, m.D) || back.Run != m.Run || back.Lo != m.Lo || back.Hi != m.Hi {
			t.Fatal("round trip changed the result")
		}
	})
}

func FuzzUnmarshalSnapshot(f *testing.F) {
	var c Codec
	f.Add(c.MarshalSnapshot(nil, sampleSnapshot()))
	f.Add([]byte{0x88})
	f.Fuzz(func(t *testing.T, data []byte) {
		checkAllocs(t, data)
		var c Codec
		var m Snapshot
		if err := c.UnmarshalSnapshot(data, &m); err != nil {
			return
		}
		m.Validate(fuzzLimits)
		var back Snapshot
		if err := c.UnmarshalSnapshot(c.MarshalSnapshot(nil, &m), &back); err != nil {
			t.Fatalf("re-encoded snapshot does not decode: %v", err)
		}
		if !bitsEqual(back.Theta, m.Theta) || back.Width != m.Width || back.Problem.Name != m.Problem.Name {
			t.Fatal("round trip changed the snapshot")
		}
	})
}

func FuzzUnmarshalWorkRequest(f *testing.F) {
	var c Codec
	f.Add(c.MarshalWorkRequest(nil, &WorkRequest{Version: Version, Run: "r", Step: 1, Lo: 0, Hi: 4, Snap: SnapshotRef{Step: 1, Size: 10, Chunks: 1}, Token: 9, Beat: 1000}))
	f.Add(c.MarshalWorkRequest(nil, &WorkRequest{Version: Version, Run: "r", Step: 1, Lo: 0, Hi: 4, Snap: SnapshotRef{Step: 1, Size: 10 << 20, Chunks: 1<<31 - 1}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkAllocs(t, data)
		var c Codec
		var m WorkRequest
		if err := c.UnmarshalWorkRequest(data, &m); err != nil {
			return
		}
		if m.Validate(fuzzLimits) == nil {
			// What passes may be fetched: never more than the limit, in
			// chunks that fit a message.
			if m.Snap.Size > fuzzLimits.MaxSnapshot || chunkLen(m.Snap.Size, m.Snap.Chunks) > ChunkSize(fuzzLimits.MaxPayload) {
				t.Fatalf("accepted %+v", m.Snap)
			}
		}
		var back WorkRequest
		if err := c.UnmarshalWorkRequest(c.MarshalWorkRequest(nil, &m), &back); err != nil || back != m {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzUnmarshalAnnounce(f *testing.F) {
	var c Codec
	f.Add(c.MarshalAnnounce(nil, &Announce{Version: Version, Run: "r", Snap: SnapshotRef{Step: 1, Size: 1, Chunks: 1}}))
	f.Add(c.MarshalAnnounce(nil, &Announce{Version: Version, Run: "r", Snap: SnapshotRef{Step: 1, Size: 1 << 30, Chunks: 1<<31 - 1}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkAllocs(t, data)
		var c Codec
		var m Announce
		if err := c.UnmarshalAnnounce(data, &m); err != nil {
			return
		}
		if m.Validate(fuzzLimits) == nil && m.Snap.Size > fuzzLimits.MaxSnapshot {
			t.Fatalf("accepted %+v", m.Snap)
		}
		var back Announce
		if err := c.UnmarshalAnnounce(c.MarshalAnnounce(nil, &m), &back); err != nil || back != m {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzUnmarshalChunkRequest(f *testing.F) {
	var c Codec
	f.Add(c.MarshalChunkRequest(nil, &ChunkRequest{Version: Version, Run: "r", Step: 2, Index: 1}))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkAllocs(t, data)
		var c Codec
		var m ChunkRequest
		if err := c.UnmarshalChunkRequest(data, &m); err != nil {
			return
		}
		m.Validate()
		var back ChunkRequest
		if err := c.UnmarshalChunkRequest(c.MarshalChunkRequest(nil, &m), &back); err != nil || back != m {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzUnmarshalChunk(f *testing.F) {
	var c Codec
	f.Add(c.MarshalChunk(nil, &Chunk{Version: Version, Run: "r", Step: 1, Count: 1, Size: 3, Data: []byte("abc")}))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkAllocs(t, data)
		var c Codec
		var m Chunk
		if err := c.UnmarshalChunk(data, &m); err != nil {
			return
		}
		var a Assembler
		a.Start(m.Run, SnapshotRef{Step: m.Step, Size: m.Size, Chunks: m.Count, Sum: m.Sum})
		a.Add(&m)
	})
}

func FuzzUnmarshalSamplerError(f *testing.F) {
	var c Codec
	f.Add(c.MarshalSamplerError(nil, &SamplerError{Version: Version, Token: 4, Code: CodeInternal, Message: "x"}))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkAllocs(t, data)
		var c Codec
		var m SamplerError
		if err := c.UnmarshalSamplerError(data, &m); err != nil {
			return
		}
		var back SamplerError
		if err := c.UnmarshalSamplerError(c.MarshalSamplerError(nil, &m), &back); err != nil || back != m {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzUnmarshalPullAndProgress(f *testing.F) {
	var c Codec
	f.Add(c.MarshalPull(nil, &Pull{Version: Version, Run: "r", Instance: "i"}))
	f.Add(c.MarshalProgress(nil, &Progress{Version: Version, Run: "r", Step: 3, Token: 8, Done: 2}))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkAllocs(t, data)
		var c Codec
		var p Pull
		if c.UnmarshalPull(data, &p) == nil {
			var back Pull
			if err := c.UnmarshalPull(c.MarshalPull(nil, &p), &back); err != nil || back != p {
				t.Fatalf("pull round trip: %v", err)
			}
		}
		var g Progress
		if c.UnmarshalProgress(data, &g) == nil {
			var back Progress
			if err := c.UnmarshalProgress(c.MarshalProgress(nil, &g), &back); err != nil || back != g {
				t.Fatalf("progress round trip: %v", err)
			}
		}
	})
}
