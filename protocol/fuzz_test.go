package protocol

import (
	"testing"
)

// The decoders never panic, whatever the input; what decodes re-encodes to
// something that decodes to the same message.

func FuzzUnmarshalResult(f *testing.F) {
	var c Codec
	f.Add(c.MarshalResult(nil, sampleResult()))
	f.Add([]byte{0x80})
	f.Add([]byte{0xdf, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		var c Codec
		var m Result
		if err := c.UnmarshalResult(data, &m); err != nil {
			return
		}
		m.Validate(ResultExpect{Run: m.Run, Step: m.Step, Width: m.Width, Probes: m.Hi})
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
		var c Codec
		var m Snapshot
		if err := c.UnmarshalSnapshot(data, &m); err != nil {
			return
		}
		m.Validate()
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
	f.Add(c.MarshalWorkRequest(nil, &WorkRequest{Version: Version, Run: "r", Step: 1, Lo: 0, Hi: 4, Snap: SnapshotRef{Step: 1, Size: 10, Chunks: 1}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c Codec
		var m WorkRequest
		if err := c.UnmarshalWorkRequest(data, &m); err != nil {
			return
		}
		m.Validate()
		var back WorkRequest
		if err := c.UnmarshalWorkRequest(c.MarshalWorkRequest(nil, &m), &back); err != nil || back != m {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzUnmarshalChunk(f *testing.F) {
	var c Codec
	f.Add(c.MarshalChunk(nil, &Chunk{Version: Version, Run: "r", Step: 1, Count: 1, Size: 3, Data: []byte("abc")}))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c Codec
		var m Chunk
		if err := c.UnmarshalChunk(data, &m); err != nil {
			return
		}
		var a Assembler
		a.Add(&m)
	})
}

func FuzzUnmarshalOthers(f *testing.F) {
	var c Codec
	f.Add(c.MarshalSamplerError(nil, &SamplerError{Version: Version, Code: CodeInternal, Message: "x"}))
	f.Add(c.MarshalChunkRequest(nil, &ChunkRequest{Version: Version, Run: "r", Step: 2, Index: 1}))
	f.Add(c.MarshalAnnounce(nil, &Announce{Version: Version, Run: "r", Snap: SnapshotRef{Step: 1, Size: 1, Chunks: 1}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c Codec
		c.UnmarshalSamplerError(data, &SamplerError{})
		c.UnmarshalChunkRequest(data, &ChunkRequest{})
		c.UnmarshalAnnounce(data, &Announce{})
	})
}
