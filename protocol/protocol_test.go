package protocol

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
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
	return &Result{Version: Version, Run: "run-1", Step: 42, Lo: 16, Hi: 19, Token: 1 << 60, Instance: "s-3", Width: 5, D: awkwardFloats(15), Masked: 1, Seconds: 0.25}
}

func sampleSnapshot() *Snapshot {
	return &Snapshot{
		Version: Version, Run: "wave_7", Step: 3,
		Problem: ProblemSpec{Name: "qtensor", Layers: []int{3, 5, 2}, Activation: "tanh", InputShift: []float64{0.5}, InputScale: []float64{2}, Params: map[string]float64{"L": 1, "a": -0.2, "c": 1},
			Text: "name = \"qtensor\"\n", Files: map[string]string{"b.csv": "x\n1\n", "a.csv": "x,y\n"}},
		Theta:  awkwardFloats(37),
		Points: Collocation{Seed: 1 << 63, Counts: []int{3, 0, 2}, Blocks: []BlockPoints{{Name: "pde", Dim: 3, Points: awkwardFloats(9), Targets: awkwardFloats(6)}, {Name: "left", Dim: 3, Points: awkwardFloats(3)}}},
		Probe:  ProbeSettings{Seed: 99, Kind: "block", Quotient: "central", Dt: 1e-5, Epsilon: 0, Allocation: "size"},
		Width:  4,
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
	if err := gs.Validate(Limits{MaxSnapshot: DefaultMaxSnapshot}); err != nil {
		t.Errorf("a valid snapshot: %v", err)
	}

	wr := &WorkRequest{Version: Version, Run: "r", Step: 5, Lo: 8, Hi: 16, Snap: SnapshotRef{Step: 5, Size: 100, Chunks: 2, Sum: sha256.Sum256([]byte("x"))}, Attempt: 2, Token: 77, Beat: 2000}
	var gw WorkRequest
	if err := c.UnmarshalWorkRequest(c.MarshalWorkRequest(nil, wr), &gw); err != nil || gw != *wr {
		t.Errorf("work request %+v (%v)", gw, err)
	}
	se := &SamplerError{Version: Version, Run: "r", Step: 5, Lo: 1, Hi: 2, Token: 5, Instance: "s", Code: CodeBadSnapshot, Message: "unknown problem \"heat\""}
	var ge SamplerError
	if err := c.UnmarshalSamplerError(c.MarshalSamplerError(nil, se), &ge); err != nil || ge != *se {
		t.Errorf("sampler error %+v (%v)", ge, err)
	}
	pl := &Pull{Version: Version, Run: "r", Instance: "host-3"}
	var gpl Pull
	if err := c.UnmarshalPull(c.MarshalPull(nil, pl), &gpl); err != nil || gpl != *pl || gpl.Validate() != nil {
		t.Errorf("pull %+v (%v)", gpl, err)
	}
	pr := &Progress{Version: Version, Run: "r", Step: 5, Token: 1<<63 + 1, Done: 7}
	var gpr Progress
	if err := c.UnmarshalProgress(c.MarshalProgress(nil, pr), &gpr); err != nil || gpr != *pr || gpr.Validate("r", 5) != nil {
		t.Errorf("progress %+v (%v)", gpr, err)
	}
	for _, bad := range []Progress{{Version: Version, Run: "x", Step: 5}, {Version: Version, Run: "r", Step: 4}, {Version: Version, Run: "r", Step: 6}, {Version: Version, Run: "r", Step: 5, Done: -1}, {Version: 2, Run: "r", Step: 5}} {
		if bad.Validate("r", 5) == nil {
			t.Errorf("progress %+v accepted", bad)
		}
	}
	for _, bad := range []Pull{{Version: Version, Run: "a.b"}, {Version: Version, Run: "r", Instance: "a b"}, {Version: 2, Run: "r"}} {
		if bad.Validate() == nil {
			t.Errorf("pull %+v accepted", bad)
		}
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
	// Strings (run, instance) are the only allocations.
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
		"missing d":     enc(map[string]any{"v": Version, "run": "r", "step": 1, "lo": 0, "hi": 1, "width": 1}),
		"d not floats":  enc(map[string]any{"v": Version, "run": "r", "step": 1, "lo": 0, "hi": 1, "width": 1, "d": []byte{1, 2, 3}}),
		"d is a string": enc(map[string]any{"v": Version, "run": "r", "step": 1, "lo": 0, "hi": 1, "width": 1, "d": "abc"}),
		"int overflow":  enc(map[string]any{"v": Version, "run": "r", "step": 1, "lo": int64(1) << 40, "hi": 1, "width": 1, "d": []byte{}}),
		"empty":         {},
	}
	// A bin claiming 4 GB inside a valid map.
	huge := enc(map[string]any{"v": Version})
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
	r.Version = Version + 1
	err := c.UnmarshalResult(c.MarshalResult(nil, r), &Result{})
	if ReasonOf(err) != ReasonVersion || !strings.Contains(err.Error(), fmt.Sprintf("version %d", Version+1)) {
		t.Errorf("version %d: %v", Version+1, err)
	}
	// Trailing bytes.
	if err := c.UnmarshalResult(append(c.MarshalResult(nil, sampleResult()), 0xc0), &Result{}); err == nil {
		t.Error("trailing bytes accepted")
	}
	// Unknown keys are skipped (forward compatibility).
	m := map[string]any{"v": Version, "run": "r", "step": 1, "lo": 0, "hi": 1, "tok": 1, "width": 1, "d": make([]byte, 8), "future": map[string]any{"x": []int{1, 2}, "y": 1.5, "z": "s"}}
	var got Result
	if err := c.UnmarshalResult(enc(m), &got); err != nil || len(got.D) != 1 {
		t.Errorf("unknown key: %v", err)
	}
}

func TestResultValidation(t *testing.T) {
	exp := ResultExpect{Run: "run-1", Step: 42, Width: 5, Lo: 10, Probes: 100, MaxBatch: 8}
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
		{func(r *Result) { r.Seconds = math.NaN() }, ReasonTime},
		{func(r *Result) { r.Seconds = 1e300 }, ReasonTime},
		{func(r *Result) { r.Seconds = 1e7 }, ReasonTime},
		{func(r *Result) { r.Seconds = -1 }, ReasonTime},
		{func(r *Result) { r.Instance = "a.b" }, ReasonMalformed},
		{func(r *Result) { r.Lo, r.Hi = 3, 6 }, ReasonRange}, // before the call's first probe
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
		{func(s *Snapshot) { s.Points.Counts = []int{1 << 30, 1 << 30} }, ReasonSize},
		{func(s *Snapshot) { s.Points.Counts = []int{-1} }, ReasonRange},
		{func(s *Snapshot) { s.Problem.Text = strings.Repeat("#", MaxProblemText+1) }, ReasonSize},
		{func(s *Snapshot) { s.Problem.Text = "" }, ReasonLength},
		{func(s *Snapshot) { s.Problem.Files[""] = "x" }, ReasonLength},
	} {
		s := sampleSnapshot()
		tc.mut(s)
		if got := ReasonOf(s.Validate(Limits{MaxSnapshot: DefaultMaxSnapshot})); got != tc.want {
			t.Errorf("reason %q, want %q", got, tc.want)
		}
	}
}

// A 4 MB snapshot crosses a 1 MB server in chunks, arriving in any order,
// with duplicates; chunks of another snapshot, out of place or corrupt are
// rejected.
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
	if err := ref.Validate(Limits{MaxSnapshot: DefaultMaxSnapshot, MaxPayload: maxPayload}); err != nil {
		t.Fatalf("the split's reference: %v", err)
	}
	var msgs [][]byte
	for i, p := range parts {
		m := c.MarshalChunk(nil, &Chunk{Version: Version, Run: snap.Run, Step: snap.Step, Index: i, Count: ref.Chunks, Offset: ChunkOffset(ref, i), Size: ref.Size, Sum: ref.Sum, Data: p})
		if len(m) > maxPayload {
			t.Fatalf("chunk message of %d bytes exceeds the max payload", len(m))
		}
		msgs = append(msgs, m)
	}
	// Shuffled, with two chunks sent again before the last one arrives:
	// a chunk that is already in is taken again without harm.
	if len(msgs) < 3 {
		t.Fatalf("%d chunks: the test needs at least 3", len(msgs))
	}
	perm := rand.New(rand.NewPCG(3, 4)).Perm(len(msgs))
	last := len(perm) - 1
	order := append(append(perm[:last:last], perm[0], perm[1]), perm[last])
	var a Assembler
	a.Start(snap.Run, ref)
	var out []byte
	var ch Chunk
	for k, i := range order {
		if err := c.UnmarshalChunk(msgs[i], &ch); err != nil {
			t.Fatal(err)
		}
		got, err := a.Add(&ch)
		if err != nil {
			t.Fatalf("chunk %d (message %d of %d): %v", i, k, len(order), err)
		}
		if (got != nil) != (k == len(order)-1) {
			t.Fatalf("message %d of %d: complete = %v", k, len(order), got != nil)
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

	sum := sha256.Sum256([]byte("abcd"))
	chunk := func(mut func(*Chunk)) *Chunk {
		ch := &Chunk{Version: Version, Run: "r", Step: 1, Index: 0, Count: 1, Offset: 0, Size: 4, Sum: sum, Data: []byte("abcd")}
		mut(ch)
		return ch
	}
	for name, tc := range map[string]struct {
		ch   *Chunk
		want Reason
	}{
		"corrupt":          {chunk(func(c *Chunk) { c.Data = []byte("abce") }), ReasonChecksum},
		"index beyond":     {chunk(func(c *Chunk) { c.Index = 1 }), ReasonRange},
		"out of place":     {chunk(func(c *Chunk) { c.Offset = 1; c.Data = []byte("bcd") }), ReasonRange},
		"short":            {chunk(func(c *Chunk) { c.Data = []byte("abc") }), ReasonRange},
		"another step":     {chunk(func(c *Chunk) { c.Step = 2 }), ReasonRange},
		"another run":      {chunk(func(c *Chunk) { c.Run = "q" }), ReasonRange},
		"another size":     {chunk(func(c *Chunk) { c.Size, c.Data = 3, []byte("abc") }), ReasonRange},
		"claims 2³¹ bytes": {chunk(func(c *Chunk) { c.Size = math.MaxInt32 }), ReasonRange},
	} {
		var d Assembler
		d.Start("r", SnapshotRef{Step: 1, Size: 4, Chunks: 1, Sum: sum})
		if _, err := d.Add(tc.ch); ReasonOf(err) != tc.want {
			t.Errorf("%s: %v, want %s", name, err, tc.want)
		}
	}
}

// SplitSnapshot's references are valid for every size and payload, and
// hostile references are not.
func TestSnapshotRefLimits(t *testing.T) {
	for _, payload := range []int{2048, 4096, 1 << 20} {
		lim := Limits{MaxSnapshot: 1 << 24, MaxPayload: payload}
		for _, size := range []int{0, 1, 100, ChunkSize(payload) - 1, ChunkSize(payload), ChunkSize(payload) + 1, 3*ChunkSize(payload) + 7, 1<<24 - 1} {
			ref, parts := SplitSnapshot(make([]byte, size), 1, ChunkSize(payload))
			if err := ref.Validate(lim); err != nil {
				t.Errorf("payload %d, size %d: %v", payload, size, err)
			}
			total := 0
			for i, p := range parts {
				if len(p) == 0 && size > 0 || ChunkOffset(ref, i) != total {
					t.Errorf("payload %d, size %d: chunk %d of %d bytes at %d", payload, size, i, len(p), ChunkOffset(ref, i))
				}
				total += len(p)
			}
		}
	}
	lim := Limits{MaxSnapshot: DefaultMaxSnapshot, MaxPayload: 1 << 20}
	for name, ref := range map[string]SnapshotRef{
		"2³¹−1 chunks":        {Size: 10 << 20, Chunks: math.MaxInt32},
		"over the limit":      {Size: DefaultMaxSnapshot + 1, Chunks: 300},
		"2³¹−1 bytes":         {Size: math.MaxInt32, Chunks: 1},
		"chunks over payload": {Size: 3 << 20, Chunks: 1},
		"tiny chunks":         {Size: 4000, Chunks: 40},
		"empty chunks":        {Size: 4, Chunks: 3},
		"no chunks":           {Size: 10, Chunks: 0},
		"negative":            {Size: -1, Chunks: 1},
	} {
		if ref.Validate(lim) == nil {
			t.Errorf("%s: %+v accepted", name, ref)
		}
	}
	w := WorkRequest{Version: Version, Run: "r", Step: 3, Lo: 0, Hi: 4, Beat: 1000, Snap: SnapshotRef{Step: 3, Size: 10 << 20, Chunks: math.MaxInt32}}
	if w.Validate(lim) == nil {
		t.Error("a work request for a snapshot of 2³¹−1 chunks was accepted")
	}
	an := Announce{Version: Version, Run: "r", Snap: w.Snap}
	if an.Validate(lim) == nil {
		t.Error("an announcement of a snapshot of 2³¹−1 chunks was accepted")
	}
	w.Snap = SnapshotRef{Step: 3, Size: 10, Chunks: 1}
	if err := w.Validate(lim); err != nil {
		t.Errorf("valid work request: %v", err)
	}
	for _, mut := range []func(*WorkRequest){
		func(w *WorkRequest) { w.Lo, w.Hi = 4, 4 },
		func(w *WorkRequest) { w.Lo = -1 },
		func(w *WorkRequest) { w.Step, w.Snap.Step = 1<<32, 1<<32 },
		func(w *WorkRequest) { w.Snap.Step = 2 },
		func(w *WorkRequest) { w.Beat = 0 },
		func(w *WorkRequest) { w.Beat = MaxBeat + 1 },
	} {
		bad := w
		mut(&bad)
		if bad.Validate(lim) == nil {
			t.Errorf("work request %+v accepted", bad)
		}
	}
}

// No input makes a decoder allocate more than a small multiple of its
// size: a string, bin, array or map that claims to be huge costs nothing,
// and deep nesting is skipped without recursion.
func TestDecodeAllocationBound(t *testing.T) {
	enc := func(v any) []byte {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	head := enc(map[string]any{"v": Version})
	field := func(key string, value ...byte) []byte {
		m := append([]byte{0x82}, head[1:]...)
		return append(append(m, enc(key)...), value...)
	}
	deep := field("future")
	for i := 0; i < 100000; i++ {
		deep = append(deep, 0x91) // [[[[...
	}
	deep = append(deep, 0xc0)
	for name, data := range map[string][]byte{
		"string of 4 GB":      field("run", 0xdb, 0xff, 0xff, 0xff, 0xf0, 'a'),
		"unknown str of 4 GB": field("x", 0xdb, 0xff, 0xff, 0xff, 0xf0, 'a'),
		"bin of 4 GB":         field("d", 0xc6, 0xff, 0xff, 0xff, 0xf0),
		"ext of 4 GB":         field("x", 0xc9, 0xff, 0xff, 0xff, 0xf0, 1),
		"map of 2³² entries":  field("x", 0xdf, 0xff, 0xff, 0xff, 0xff),
		"100000 nested":       deep,
	} {
		if n := decodeAllocs(data); n > allocBound(len(data)) {
			t.Errorf("%s: %d bytes allocated for %d bytes of input", name, n, len(data))
		}
	}
}

// allocBound is the most a decode may allocate for n bytes of input.
func allocBound(n int) uint64 { return 4*uint64(n) + 16<<10 }

// decodeAllocs is the least a fresh codec allocated over three decodes of
// data as every message type (the least, so a background allocation of
// the test runtime does not count).
func decodeAllocs(data []byte) uint64 {
	least := uint64(math.MaxUint64)
	var ms runtime.MemStats
	for range 3 {
		runtime.ReadMemStats(&ms)
		before := ms.TotalAlloc
		var c Codec
		c.UnmarshalResult(data, &Result{})
		c.UnmarshalSnapshot(data, &Snapshot{})
		c.UnmarshalWorkRequest(data, &WorkRequest{})
		c.UnmarshalChunk(data, &Chunk{})
		c.UnmarshalChunkRequest(data, &ChunkRequest{})
		c.UnmarshalAnnounce(data, &Announce{})
		c.UnmarshalSamplerError(data, &SamplerError{})
		c.UnmarshalPull(data, &Pull{})
		c.UnmarshalProgress(data, &Progress{})
		runtime.ReadMemStats(&ms)
		least = min(least, ms.TotalAlloc-before)
	}
	return least
}

func TestSubjects(t *testing.T) {
	s, err := NewSubjects("lab.ntk")
	if err != nil {
		t.Fatal(err)
	}
	if s.Pull("r1") != "lab.ntk.pull.r1.*" || s.PullFrom("r1", "u") != "lab.ntk.pull.r1.u" || s.Snapshot("r1") != "lab.ntk.snap.r1.*" || s.SnapshotFrom("r1", "u") != "lab.ntk.snap.r1.u" || Inbox("u") != "_INBOX_u" || s.Results("r1") != "lab.ntk.results.r1.*" || s.ResultsFrom("r1", "t") != "lab.ntk.results.r1.t" || s.Announce("r1") != "lab.ntk.announce.r1" {
		t.Errorf("subjects %v", s)
	}
	if id, err := Sender("lab.ntk.results.r1.sampler-3"); id != "sampler-3" || err != nil {
		t.Errorf("sender %q (%v)", id, err)
	}
	if _, err := Sender("lab.ntk.results.r1.*"); err == nil {
		t.Error("a wildcard named a sender")
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
