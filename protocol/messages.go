package protocol

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// Version is the protocol version every message carries (key "v").
const Version = 1

// ProblemSpec names the residual and its network. Package model interprets
// it; here it is opaque.
type ProblemSpec struct {
	Name       string             // "name"
	Layers     []int              // "layers"; empty for non-network problems
	Activation string             // "act"
	InputShift []float64          // "shift"
	InputScale []float64          // "scale"
	Params     map[string]float64 // "params"
}

// BlockPoints are the explicit collocation points of one residual block.
type BlockPoints struct {
	Name    string    // "name"
	Dim     int       // "dim"
	Points  []float64 // "pts": count×Dim
	Targets []float64 // "tgt": count×components, or empty
}

// Collocation says where the residuals are evaluated: explicit points, or
// points drawn from Seed for the snapshot's step (Counts per block).
type Collocation struct {
	Seed   uint64        // "seed"
	Counts []int         // "counts"
	Blocks []BlockPoints // "blocks"; wins when not empty
}

// ProbeSettings fix how every probe of the run is drawn and differenced.
type ProbeSettings struct {
	Seed       uint64  // "seed"
	Kind       string  // "kind": gaussian, rademacher, block, param
	Quotient   string  // "quot": forward, central, exact
	Dt         float64 // "dt": 0 is automatic
	Epsilon    float64 // "eps": 0 is automatic
	Allocation string  // "alloc": equal, size
}

// Snapshot is the base point of one step: θ, the points and how to probe.
type Snapshot struct {
	Version int
	Run     string
	Step    int64
	Problem ProblemSpec
	Theta   []float64
	Points  Collocation
	Probe   ProbeSettings
	Width   int // floats per probe result
}

// SnapshotRef identifies one encoded snapshot.
type SnapshotRef struct {
	Step   int64    // "step"
	Size   int      // "size": encoded bytes
	Chunks int      // "chunks"
	Sum    [32]byte // "sum": SHA-256 of the encoded snapshot
}

// WorkRequest asks a sampler for probes [Lo, Hi) of a step.
type WorkRequest struct {
	Version int
	Run     string
	Step    int64
	Lo, Hi  int
	Snap    SnapshotRef
	Attempt int // re-dispatch count
}

// Result carries the quotients of probes [Lo, Hi): (Hi−Lo)·Width values,
// probe-major.
type Result struct {
	Version int
	Run     string
	Step    int64
	Lo, Hi  int
	Sampler string
	Width   int
	D       []float64
	Masked  int     // residual rows with R_i = 0 that the probes dropped
	Seconds float64 // compute time
}

// SamplerError is what a sampler answers instead of a Result.
type SamplerError struct {
	Version int
	Run     string
	Step    int64
	Lo, Hi  int
	Sampler string
	Code    string // bad_snapshot, snapshot_unavailable, bad_request, internal
	Message string
}

// Sampler error codes.
const (
	CodeBadSnapshot         = "bad_snapshot"
	CodeSnapshotUnavailable = "snapshot_unavailable"
	CodeBadRequest          = "bad_request"
	CodeInternal            = "internal"
)

// ChunkRequest asks the coordinator for chunk Index of a step's snapshot.
type ChunkRequest struct {
	Version int
	Run     string
	Step    int64
	Index   int
}

// Chunk is one piece of an encoded snapshot.
type Chunk struct {
	Version int
	Run     string
	Step    int64
	Index   int
	Count   int
	Offset  int
	Size    int
	Sum     [32]byte
	Data    []byte
}

// Announce tells samplers a new snapshot exists, so idle ones fetch it early.
type Announce struct {
	Version int
	Run     string
	Snap    SnapshotRef
}

// Reason classifies a rejected message, for counting.
type Reason string

// The reasons a message is rejected.
const (
	ReasonMalformed  Reason = "malformed"
	ReasonVersion    Reason = "version"
	ReasonRun        Reason = "other_run"
	ReasonStaleStep  Reason = "stale_step"
	ReasonFutureStep Reason = "future_step"
	ReasonRange      Reason = "range"
	ReasonLength     Reason = "length"
	ReasonNonFinite  Reason = "non_finite"
	ReasonWidth      Reason = "width"
	ReasonChecksum   Reason = "checksum"
)

// RejectError is a message that failed decoding or validation.
type RejectError struct {
	Reason Reason
	Detail string
}

func (e *RejectError) Error() string { return string(e.Reason) + ": " + e.Detail }

// ReasonOf returns the rejection reason of err, or "" if it is not a RejectError.
func ReasonOf(err error) Reason {
	var re *RejectError
	if errors.As(err, &re) {
		return re.Reason
	}
	return ""
}

func reject(r Reason, format string, a ...any) *RejectError {
	return &RejectError{Reason: r, Detail: fmt.Sprintf(format, a...)}
}

// ResultExpect is what a valid Result must match.
type ResultExpect struct {
	Run      string
	Step     int64
	Width    int
	Probes   int // valid probe indices are [0, Probes)
	MaxBatch int // 0: no limit
}

// Validate checks a decoded Result against what the coordinator expects.
func (m *Result) Validate(exp ResultExpect) error {
	if err := version(int64(m.Version)); err != nil {
		return err
	}
	if m.Run != exp.Run {
		return reject(ReasonRun, "result of run %q, expected %q", m.Run, exp.Run)
	}
	if m.Step < exp.Step {
		return reject(ReasonStaleStep, "result of step %d, the run is at step %d", m.Step, exp.Step)
	}
	if m.Step > exp.Step {
		return reject(ReasonFutureStep, "result of step %d, the run is at step %d", m.Step, exp.Step)
	}
	if m.Lo < 0 || m.Hi <= m.Lo || m.Hi > exp.Probes {
		return reject(ReasonRange, "probes [%d, %d) outside [0, %d)", m.Lo, m.Hi, exp.Probes)
	}
	if exp.MaxBatch > 0 && m.Hi-m.Lo > exp.MaxBatch {
		return reject(ReasonRange, "%d probes in one result, at most %d", m.Hi-m.Lo, exp.MaxBatch)
	}
	if m.Width != exp.Width {
		return reject(ReasonWidth, "width %d, expected %d", m.Width, exp.Width)
	}
	if len(m.D) != (m.Hi-m.Lo)*m.Width {
		return reject(ReasonLength, "%d values for %d probes of width %d", len(m.D), m.Hi-m.Lo, m.Width)
	}
	if m.Masked < 0 {
		return reject(ReasonRange, "negative masked count %d", m.Masked)
	}
	for i, v := range m.D {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return reject(ReasonNonFinite, "value %d (probe %d) is %v", i, m.Lo+i/max(m.Width, 1), v)
		}
	}
	return nil
}

// Validate checks a work request's shape.
func (m *WorkRequest) Validate() error {
	if err := version(int64(m.Version)); err != nil {
		return err
	}
	if err := ValidRunID(m.Run); err != nil {
		return reject(ReasonRun, "%v", err)
	}
	if m.Step < 0 || m.Lo < 0 || m.Hi <= m.Lo {
		return reject(ReasonRange, "step %d, probes [%d, %d)", m.Step, m.Lo, m.Hi)
	}
	if m.Snap.Step != m.Step || m.Snap.Size < 0 || m.Snap.Chunks < 1 {
		return reject(ReasonRange, "snapshot reference %+v for step %d", m.Snap, m.Step)
	}
	return nil
}

// Validate checks a snapshot's shape: what a sampler can check before the
// model interprets it.
func (m *Snapshot) Validate() error {
	if err := version(int64(m.Version)); err != nil {
		return err
	}
	if err := ValidRunID(m.Run); err != nil {
		return reject(ReasonRun, "%v", err)
	}
	if m.Step < 0 {
		return reject(ReasonRange, "step %d", m.Step)
	}
	if m.Width <= 0 {
		return reject(ReasonWidth, "width %d", m.Width)
	}
	if err := finite("theta", m.Theta); err != nil {
		return err
	}
	for _, v := range []float64{m.Probe.Dt, m.Probe.Epsilon} {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return reject(ReasonNonFinite, "probe settings: Δt %v, ε %v", m.Probe.Dt, m.Probe.Epsilon)
		}
	}
	if err := finite("input shift", m.Problem.InputShift); err != nil {
		return err
	}
	if err := finite("input scale", m.Problem.InputScale); err != nil {
		return err
	}
	for k, v := range m.Problem.Params {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return reject(ReasonNonFinite, "parameter %s = %v", k, v)
		}
	}
	for _, c := range m.Points.Counts {
		if c < 0 {
			return reject(ReasonRange, "negative point count %d", c)
		}
	}
	for _, b := range m.Points.Blocks {
		if b.Dim <= 0 || len(b.Points)%b.Dim != 0 {
			return reject(ReasonLength, "block %s: %d coordinates of dimension %d", b.Name, len(b.Points), b.Dim)
		}
		if err := finite("block "+b.Name+" points", b.Points); err != nil {
			return err
		}
		if err := finite("block "+b.Name+" targets", b.Targets); err != nil {
			return err
		}
	}
	if len(m.Points.Blocks) == 0 && len(m.Points.Counts) == 0 {
		return reject(ReasonLength, "no points: neither explicit blocks nor counts")
	}
	return nil
}

// Validate checks a chunk against itself.
func (m *Chunk) Validate() error {
	if err := version(int64(m.Version)); err != nil {
		return err
	}
	if err := ValidRunID(m.Run); err != nil {
		return reject(ReasonRun, "%v", err)
	}
	if m.Count < 1 || m.Index < 0 || m.Index >= m.Count || m.Offset < 0 || m.Size < 0 || m.Offset+len(m.Data) > m.Size {
		return reject(ReasonRange, "chunk %d of %d at %d+%d of %d bytes", m.Index, m.Count, m.Offset, len(m.Data), m.Size)
	}
	return nil
}

func finite(what string, v []float64) error {
	for i, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return reject(ReasonNonFinite, "%s[%d] = %v", what, i, x)
		}
	}
	return nil
}

// sortedKeys returns map keys in order, so encodings are deterministic.
func sortedKeys(m map[string]float64) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}
