package protocol

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func awkwardFloats(n int) []float64 {
	v := []float64{0, math.Copysign(0, -1), 5e-324, -2.2250738585072014e-308, math.MaxFloat64, 1.0 / 3, -7}
	r := rand.New(rand.NewPCG(1, 2))
	for len(v) < n {
		v = append(v, r.NormFloat64()*math.Pow(10, float64(r.IntN(40)-20)))
	}
	return v[:n]
}

func sampleResult() *Result {
	return &Result{Version: Version, Run: "run-1", Step: 42, Lo: 16, Hi: 19, Sampler: "s-3", Width: 5, D: awkwardFloats(15), Masked: 1, Seconds: 0.25}
}

func sampleSnapshot() *Snapshot {
	return &Snapshot{
		Version: Version, Run: "wave_7", Step: 3,
		Problem: ProblemSpec{Name: "qtensor", Layers: []int{3, 5, 2}, Activation: "tanh", InputShift: []float64{0.5}, InputScale: []float64{2}, Params: map[string]float64{"L": 1, "a": -0.2, "c": 1}},
		Theta:   awkwardFloats(37),
		Points:  Collocation{Seed: 1 << 63, Counts: []int{3, 0, 2}, Blocks: []BlockPoints{{Name: "pde", Dim: 3, Points: awkwardFloats(9), Targets: awkwardFloats(6)}, {Name: "left", Dim: 3, Points: awkwardFloats(3)}}},
		Probe:   ProbeSettings{Seed: 99, Kind: "block", Quotient: "central", Dt: 1e-5, Epsilon: 0, Allocation: "size"},
		Width:   4,
	}
}

func bitsEqual(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
			return false
		}
	}
	return true
}

func TestRoundTrips(t *testing.T) {
	var c Codec
	res := sampleResult()
	var got Result
	if err := c.UnmarshalResult(c.MarshalResult(nil, res), &got); err != nil {
		t.Fatal(err)
	}
	if !bitsEqual(got.D, res.D) {
		t.Fatal("result floats changed")
	}
	got.D, res.D = nil, nil
	if !reflect.DeepEqual(got, *res) {
		t.Errorf("result: %+v, want %+v", got, *res)
	}

	snap := sampleSnapshot()
	var gs Snapshot
	if err := c.UnmarshalSnapshot(c.MarshalSnapshot(nil, snap), &gs); err != nil {
		t.Fatal(err)
	}
	if !bitsEqual(gs.Theta, snap.Theta) || !bitsEqual(gs.Points.Blocks[0].Points, snap.Points.Blocks[0].Points) {
		t.Fatal("snapshot floats changed")
	}
	if !reflect.DeepEqual(gs.Problem, snap.Problem) || !reflect.DeepEqual(gs.Probe, snap.Probe) || gs.Points.Seed != snap.Points.Seed || !reflect.DeepEqual(gs.Points.Counts, snap.Points.Counts) || gs.Width != 4 {
		t.Errorf("snapshot: %+v", gs)
	}
	if err := gs.Validate(); err != nil {
		t.Errorf("a valid snapshot: %v", err)
	}

	wr := &WorkRequest{Version: Version, Run: "r", Step: 5, Lo: 8, Hi: 16, Snap: SnapshotRef{Step: 5, Size: 100, Chunks: 2, Sum: sha256.Sum256([]byte("x"))}, Attempt: 2}
	var gw WorkRequest
	if err := c.UnmarshalWorkRequest(c.MarshalWorkRequest(nil, wr), &gw); err != nil || gw != *wr {
		t.Errorf("work request %+v (%v)", gw, err)
	}
	se := &SamplerError{Version: Version, Run: "r", Step: 5, Lo: 1, Hi: 2, Sampler: "s", Code: CodeBadSnapshot, Message: "unknown problem \"heat\""}
	var ge SamplerError
	if err := c.UnmarshalSamplerError(c.MarshalSamplerError(nil, se), &ge); err != nil || ge != *se {
		t.Errorf("sampler error %+v (%v)", ge, err)
	}
	cr := &ChunkRequest{Version: Version, Run: "r", Step: 5, Index: 3}
	var gcr ChunkRequest
	if err := c.UnmarshalChunkRequest(c.MarshalChunkRequest(nil, cr), &gcr); err != nil || gcr != *cr {
		t.Errorf("chunk request %+v (%v)", gcr, err)
	}
	an := &Announce{Version: Version, Run: "r", Snap: wr.Snap}
	var ga Announce
	if err := c.UnmarshalAnnounce(c.MarshalAnnounce(nil, an), &ga); err != nil || ga != *an {
		t.Errorf("announce %+v (%v)", ga, err)
	}
}

// Decoding reuses the destination's buffers.
func TestDecodeReusesBuffers(t *testing.T) {
	var c Codec
	data := c.MarshalResult(nil, sampleResult())
	var m Result
	c.UnmarshalResult(data, &m)
	p := &m.D[0]
	allocs := testing.AllocsPerRun(100, func() {
		if err := c.UnmarshalResult(data, &m); err != nil {
			t.Fatal(err)
		}
	})
	if &m.D[0] != p {
		t.Error("the float buffer was not reused")
	}
	// Strings (run, sampler) are the only allocations.
	if allocs > 2 {
		t.Errorf("%v allocations per decode", allocs)
	}
	buf := make([]byte, 0, 4096)
	res := sampleResult()
	if a := testing.AllocsPerRun(100, func() { buf = c.MarshalResult(buf[:0], res) }); a != 0 {
		t.Errorf("%v allocations per encode", a)
	}
}

// Every prefix of a message is an error, never a panic.
func TestTruncatedMessagesAreErrors(t *testing.T) {
	var c Codec
	for name, data := range map[string][]byte{
		"result":   c.MarshalResult(nil, sampleResult()),
		"snapshot": c.MarshalSnapshot(nil, sampleSnapshot()),
	} {
		for n := 0; n < len(data); n++ {
			var err error
			if name == "result" {
				err = c.UnmarshalResult(data[:n], &Result{})
			} else {
				err = c.UnmarshalSnapshot(data[:n], &Snapshot{})
			}
			if err == nil {
				t.Fatalf("%s truncated to %d of %d bytes decoded", name, n, len(data))
			}
			if ReasonOf(err) != ReasonMalformed {
				t.Fatalf("%s truncated to %d: reason %q", name, n, ReasonOf(err))
			}
		}
	}
}

// Hostile inputs: huge declared lengths, wrong types, missing fields,
// another version, trailing bytes.
func TestHostileInputs(t *testing.T) {
	var c Codec
	enc := func(v any) []byte {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := map[string][]byte{
		"huge map":      {0xdf, 0xff, 0xff, 0xff, 0xff},
		"huge bin":      append(enc(map[string]any{"v": 1}), 0),
		"not a map":     enc([]int{1, 2, 3}),
		"missing d":     enc(map[string]any{"v": 1, "run": "r", "step": 1, "lo": 0, "hi": 1, "width": 1}),
		"d not floats":  enc(map[string]any{"v": 1, "run": "r", "step": 1, "lo": 0, "hi": 1, "width": 1, "d": []byte{1, 2, 3}}),
		"d is a string": enc(map[string]any{"v": 1, "run": "r", "step": 1, "lo": 0, "hi": 1, "width": 1, "d": "abc"}),
		"int overflow":  enc(map[string]any{"v": 1, "run": "r", "step": 1, "lo": int64(1) << 40, "hi": 1, "width": 1, "d": []byte{}}),
		"empty":         {},
	}
	// A bin claiming 4 GB inside a valid map.
	huge := enc(map[string]any{"v": 1})
	huge[0] = 0x82
	huge = append(huge, append(enc("d"), 0xc6, 0xff, 0xff, 0xff, 0xf0)...)
	cases["bin of 4 GB"] = huge
	for name, data := range cases {
		if err := c.UnmarshalResult(data, &Result{}); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	// Another version.
	r := sampleResult()
	r.Version = 2
	err := c.UnmarshalResult(c.MarshalResult(nil, r), &Result{})
	if ReasonOf(err) != ReasonVersion || !strings.Contains(err.Error(), "version 2") {
		t.Errorf("version 2: %v", err)
	}
	// Trailing bytes.
	if err := c.UnmarshalResult(append(c.MarshalResult(nil, sampleResult()), 0xc0), &Result{}); err == nil {
		t.Error("trailing bytes accepted")
	}
	// Unknown keys are skipped (forward compatibility).
	m := map[string]any{"v": 1, "run": "r", "step": 1, "lo": 0, "hi": 1, "width": 1, "d": make([]byte, 8), "future": map[string]any{"x": []int{1, 2}}}
	var got Result
	if err := c.UnmarshalResult(enc(m), &got); err != nil || len(got.D) != 1 {
		t.Errorf("unknown key: %v", err)
	}
}

func TestResultValidation(t *testing.T) {
	exp := ResultExpect{Run: "run-1", Step: 42, Width: 5, Probes: 100, MaxBatch: 8}
	if err := sampleResult().Validate(exp); err != nil {
		t.Fatalf("valid result: %v", err)
	}
	for _, tc := range []struct {
		mut  func(*Result)
		want Reason
	}{
		{func(r *Result) { r.Run = "other" }, ReasonRun},
		{func(r *Result) { r.Step = 41 }, ReasonStaleStep},
		{func(r *Result) { r.Step = 43 }, ReasonFutureStep},
		{func(r *Result) { r.Lo, r.Hi = 5, 5 }, ReasonRange},
		{func(r *Result) { r.Lo, r.Hi = 98, 101 }, ReasonRange},
		{func(r *Result) { r.Lo, r.Hi, r.D = 0, 9, make([]float64, 45) }, ReasonRange},
		{func(r *Result) { r.Width = 4; r.D = r.D[:12] }, ReasonWidth},
		{func(r *Result) { r.D = r.D[:14] }, ReasonLength},
		{func(r *Result) { r.D[7] = math.NaN() }, ReasonNonFinite},
		{func(r *Result) { r.D[0] = math.Inf(-1) }, ReasonNonFinite},
		{func(r *Result) { r.Version = 0 }, ReasonVersion},
	} {
		r := sampleResult()
		tc.mut(r)
		if got := ReasonOf(r.Validate(exp)); got != tc.want {
			t.Errorf("%+v: reason %q, want %q", r, got, tc.want)
		}
	}
}

func TestSnapshotValidation(t *testing.T) {
	for _, tc := range []struct {
		mut  func(*Snapshot)
		want Reason
	}{
		{func(s *Snapshot) { s.Run = "a.b" }, ReasonRun},
		{func(s *Snapshot) { s.Theta[3] = math.NaN() }, ReasonNonFinite},
		{func(s *Snapshot) { s.Points.Blocks[0].Dim = 2 }, ReasonLength},
		{func(s *Snapshot) { s.Width = 0 }, ReasonWidth},
		{func(s *Snapshot) { s.Probe.Dt = -1 }, ReasonNonFinite},
		{func(s *Snapshot) { s.Points = Collocation{} }, ReasonLength},
	} {
		s := sampleSnapshot()
		tc.mut(s)
		if got := ReasonOf(s.Validate()); got != tc.want {
			t.Errorf("reason %q, want %q", got, tc.want)
		}
	}
}

// A 4 MB snapshot crosses a 1 MB server in chunks, arriving in any order,
// with duplicates; a newer snapshot's chunk discards an older partial one.
func TestChunksReassemble(t *testing.T) {
	var c Codec
	snap := sampleSnapshot()
	snap.Theta = awkwardFloats(503001)
	encoded := c.MarshalSnapshot(nil, snap)
	const maxPayload = 1 << 20
	ref, parts := SplitSnapshot(encoded, snap.Step, ChunkSize(maxPayload))
	if ref.Chunks < 4 || len(parts) != ref.Chunks {
		t.Fatalf("%d bytes in %d chunks", len(encoded), ref.Chunks)
	}
	var msgs [][]byte
	off := 0
	for i, p := range parts {
		m := c.MarshalChunk(nil, &Chunk{Version: Version, Run: snap.Run, Step: snap.Step, Index: i, Count: ref.Chunks, Offset: off, Size: ref.Size, Sum: ref.Sum, Data: p})
		if len(m) > maxPayload {
			t.Fatalf("chunk message of %d bytes exceeds the max payload", len(m))
		}
		msgs = append(msgs, m)
		off += len(p)
	}
	// Shuffled, with every chunk twice.
	order := append(rand.New(rand.NewPCG(3, 4)).Perm(len(msgs)), 0, 2)
	var a Assembler
	a.Start(snap.Run, ref)
	var out []byte
	var ch Chunk
	for _, i := range order {
		if err := c.UnmarshalChunk(msgs[i], &ch); err != nil {
			t.Fatal(err)
		}
		got, err := a.Add(&ch)
		if err != nil {
			t.Fatal(err)
		}
		if got != nil {
			out = append([]byte(nil), got...)
		}
	}
	if !bytes.Equal(out, encoded) {
		t.Fatal("reassembled snapshot differs")
	}
	var back Snapshot
	if err := c.UnmarshalSnapshot(out, &back); err != nil || !bitsEqual(back.Theta, snap.Theta) {
		t.Fatalf("decoded: %v", err)
	}

	// A partial older snapshot is dropped when a newer one starts.
	var b Assembler
	b.Start("r", SnapshotRef{Step: 1, Size: 4, Chunks: 2, Sum: sha256.Sum256([]byte("abcd"))})
	b.Add(&Chunk{Version: Version, Run: "r", Step: 1, Index: 0, Count: 2, Offset: 0, Size: 4, Sum: sha256.Sum256([]byte("abcd")), Data: []byte("ab")})
	newSum := sha256.Sum256([]byte("xy"))
	got, err := b.Add(&Chunk{Version: Version, Run: "r", Step: 2, Index: 0, Count: 1, Offset: 0, Size: 2, Sum: newSum, Data: []byte("xy")})
	if err != nil || string(got) != "xy" {
		t.Fatalf("newer snapshot: %q, %v", got, err)
	}
	if _, err := b.Add(&Chunk{Version: Version, Run: "r", Step: 1, Index: 1, Count: 2, Offset: 2, Size: 4, Sum: sha256.Sum256([]byte("abcd")), Data: []byte("cd")}); !errors.Is(err, ErrStaleChunk) {
		t.Errorf("chunk of the older snapshot: %v", err)
	}
	// A corrupted chunk fails the checksum.
	var d Assembler
	sum := sha256.Sum256([]byte("abcd"))
	d.Start("r", SnapshotRef{Step: 1, Size: 4, Chunks: 1, Sum: sum})
	if _, err := d.Add(&Chunk{Version: Version, Run: "r", Step: 1, Count: 1, Size: 4, Sum: sum, Data: []byte("abce")}); ReasonOf(err) != ReasonChecksum {
		t.Errorf("corrupt chunk: %v", err)
	}
	// Out-of-range chunks are rejected.
	if _, err := d.Add(&Chunk{Version: Version, Run: "r", Step: 1, Index: 1, Count: 1, Size: 4, Sum: sum, Data: []byte("a")}); ReasonOf(err) != ReasonRange {
		t.Errorf("index beyond count: %v", err)
	}
}

func TestSubjects(t *testing.T) {
	s, err := NewSubjects("lab.ntk")
	if err != nil {
		t.Fatal(err)
	}
	if s.Work() != "lab.ntk.work" || s.QueueGroup() != "lab.ntk-samplers" || s.Snapshot("r1") != "lab.ntk.snap.r1" || s.Results("r1") != "lab.ntk.results.r1.*" || s.ResultsFor("r1", "t") != "lab.ntk.results.r1.t" || s.Announce("r1") != "lab.ntk.announce.r1" {
		t.Errorf("subjects %v", s)
	}
	for _, bad := range []string{"", "a..b", "a.*", "a b", "x.>"} {
		if _, err := NewSubjects(bad); err == nil {
			t.Errorf("prefix %q accepted", bad)
		}
	}
	for _, bad := range []string{"", "a.b", "a*", strings.Repeat("x", 65)} {
		if ValidRunID(bad) == nil {
			t.Errorf("run id %q accepted", bad)
		}
	}
}
