package protocol

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// Version is the protocol version every message carries (key "v").
// Version 2: samplers acknowledge or decline each work request (Hold), and
// request snapshot chunks on a subject that names their credential.
// Version 3: samplers pull work when idle, report progress while they
// compute, and publish everything on subjects that name their credential.
// Version 4: a problem may come as the text of a problem file (ProblemSpec
// Text and Files), which an older sampler would ignore.
const Version = 4

// ProblemSpec names the residual and its network. Package model interprets
// it; here it is opaque.
type ProblemSpec struct {
	Name       string             // "name"
	Layers     []int              // "layers"; empty for non-network problems
	Activation string             // "act"
	InputShift []float64          // "shift"
	InputScale []float64          // "scale"
	Params     map[string]float64 // "params"
	// Text is a problem file's text, empty for a built-in problem; Files
	// are the contents of the points files it names, by name.
	Text  string            // "text"
	Files map[string]string // "files"
}

// MaxProblemText bounds a problem file's text in a snapshot, and
// MaxFileName the name of a file it names.
const (
	MaxProblemText = 256 << 10
	MaxFileName    = 1024
)

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

// Pull is an idle sampler's request for a batch of a run, on
// Subjects.PullFrom. The coordinator answers with a WorkRequest, or with an
// empty message whose HeaderStatus is StatusNone when it has nothing for
// the sampler now (it announces the run again when it has).
type Pull struct {
	Version  int
	Run      string
	Instance string // the replica's name, for logs: not an identity
}

// WorkRequest gives the puller probes [Lo, Hi) of a step. Token names this
// assignment in the sampler's Progress, Result or SamplerError; Beat is how
// often, in milliseconds, the sampler reports progress while it holds the
// batch: a holder silent for much longer has its batch taken back.
type WorkRequest struct {
	Version int
	Run     string
	Step    int64
	Lo, Hi  int
	Snap    SnapshotRef
	Attempt int // how often the batch went out before
	Token   uint64
	Beat    int // milliseconds, MinBeat to MaxBeat
}

// Heartbeat bounds, in milliseconds.
const (
	MinBeat = 50
	MaxBeat = 60_000
)

// Progress is a sampler's word that it is still working on an assignment:
// Done of its probes are computed.
type Progress struct {
	Version int
	Run     string
	Step    int64
	Token   uint64
	Done    int
}

// Result carries the quotients of probes [Lo, Hi): (Hi−Lo)·Width values,
// probe-major.
type Result struct {
	Version  int
	Run      string
	Step     int64
	Lo, Hi   int
	Token    uint64
	Instance string // the replica's name, for logs: not an identity
	Width    int
	D        []float64
	Masked   int     // residual rows with R_i = 0 that the probes dropped
	Seconds  float64 // compute time
}

// SamplerError is what a sampler answers instead of a Result.
type SamplerError struct {
	Version  int
	Run      string
	Step     int64
	Lo, Hi   int
	Token    uint64
	Instance string
	Code     string // bad_snapshot, snapshot_unavailable, bad_request, internal
	Message  string
}

// Sampler error codes.
const (
	CodeBadSnapshot         = "bad_snapshot"
	CodeSnapshotUnavailable = "snapshot_unavailable"
	CodeBadRequest          = "bad_request"
	CodeInternal            = "internal"
	// CodeStopping gives back a batch the sampler will not compute (it
	// stops, or the batch came after its pull gave up): the coordinator
	// gives it to another at once.
	CodeStopping = "stopping"
)

// Headers of the messages that are not messages of their own.
const (
	// HeaderKind tells what a message on a results subject is: KindProgress,
	// KindError, or (absent) a Result.
	HeaderKind   = "Ntkbus-Kind"
	KindProgress = "progress"
	KindError    = "error"
	// HeaderStatus with StatusNone answers a pull when there is no batch.
	HeaderStatus = "Ntkbus-Status"
	StatusNone   = "none"
	// HeaderError carries the coordinator's reason for not serving a chunk
	// or a pull.
	HeaderError = "Ntkbus-Error"
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
	// ReasonTime: a compute time that is not finite or beyond MaxSeconds.
	ReasonTime Reason = "time"
	// ReasonSize: a snapshot or batch beyond the configured limits.
	ReasonSize Reason = "size"
	// ReasonDuplicate: a batch already answered (a re-sent batch's late
	// first answer, or a replay).
	ReasonDuplicate Reason = "duplicate"
	// ReasonReply: a chunk request whose reply subject is not an inbox of
	// the credential that sent it.
	ReasonReply Reason = "reply_subject"
	// ReasonMismatch: a result whose bits differ from the coordinator's own
	// computation of the same probes (--verify).
	ReasonMismatch Reason = "mismatch"
	// ReasonQuarantined: a result from a sampler identity caught forging
	// earlier in the run (a mismatch or an implausible result).
	ReasonQuarantined Reason = "quarantined"
	// ReasonSender: a message about an assignment of another identity, or
	// on a subject that names no identity.
	ReasonSender Reason = "sender"
	// ReasonImplausible: a result larger than K can make it (see
	// coordinator.Plausibility): proof of a forgery, so its sender is
	// quarantined.
	ReasonImplausible Reason = "implausible"
	// ReasonRate: a request beyond its identity's rate limit.
	ReasonRate Reason = "rate"
)

// MaxSeconds bounds the compute time a result may report (one day): the
// coordinator keeps its deadlines by its own clock, and uses a sampler's
// report only for statistics.
const MaxSeconds = 86400

// Limits bound what a message may make its receiver fetch, hold or allocate.
type Limits struct {
	// MaxSnapshot is the largest encoded snapshot accepted, in bytes.
	MaxSnapshot int
	// MaxPayload is the server's max payload (0: not checked): every chunk
	// and every result must fit in one message.
	MaxPayload int
}

// DefaultMaxSnapshot is the default snapshot limit: 256 MiB, a network of
// 32 million parameters (the wave network's snapshot is 4 MB).
const DefaultMaxSnapshot = 256 << 20

// MinChunk is the least data a chunk carries unless it is the only one: a
// server whose max payload is below 2 KiB is not supported.
const MinChunk = 512

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
	Lo       int // valid probe indices are [Lo, Probes)
	Probes   int
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
	if m.Lo < exp.Lo || m.Hi <= m.Lo || m.Hi > exp.Probes {
		return reject(ReasonRange, "probes [%d, %d) outside [%d, %d)", m.Lo, m.Hi, exp.Lo, exp.Probes)
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
	if !(m.Seconds >= 0 && m.Seconds <= MaxSeconds) {
		return reject(ReasonTime, "compute time %v s: want 0 to %d", m.Seconds, MaxSeconds)
	}
	if err := ValidInstance(m.Instance); err != nil {
		return reject(ReasonMalformed, "%v", err)
	}
	for i, v := range m.D {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return reject(ReasonNonFinite, "value %d (probe %d) is %v", i, m.Lo+i/max(m.Width, 1), v)
		}
	}
	return nil
}

// Validate checks a work request's shape and its snapshot reference
// against the receiver's limits.
func (m *WorkRequest) Validate(lim Limits) error {
	if err := version(int64(m.Version)); err != nil {
		return err
	}
	if err := ValidRunID(m.Run); err != nil {
		return reject(ReasonRun, "%v", err)
	}
	if m.Step < 0 || m.Step > math.MaxUint32 || m.Lo < 0 || m.Hi <= m.Lo || m.Attempt < 0 {
		return reject(ReasonRange, "step %d, probes [%d, %d), attempt %d", m.Step, m.Lo, m.Hi, m.Attempt)
	}
	if m.Beat < MinBeat || m.Beat > MaxBeat {
		return reject(ReasonRange, "heartbeat every %d ms: want %d to %d", m.Beat, MinBeat, MaxBeat)
	}
	if m.Snap.Step != m.Step {
		return reject(ReasonRange, "snapshot of step %d for work of step %d", m.Snap.Step, m.Step)
	}
	return m.Snap.Validate(lim)
}

// Validate checks a pull's shape.
func (m *Pull) Validate() error {
	if err := version(int64(m.Version)); err != nil {
		return err
	}
	if err := ValidRunID(m.Run); err != nil {
		return reject(ReasonRun, "%v", err)
	}
	if m.Instance != "" {
		if err := ValidInstance(m.Instance); err != nil {
			return reject(ReasonMalformed, "%v", err)
		}
	}
	return nil
}

// Validate checks a progress report against the run and step expected.
func (m *Progress) Validate(run string, step int64) error {
	if err := version(int64(m.Version)); err != nil {
		return err
	}
	if m.Run != run {
		return reject(ReasonRun, "progress of run %q, expected %q", m.Run, run)
	}
	if m.Step < step {
		return reject(ReasonStaleStep, "progress of step %d, the run is at step %d", m.Step, step)
	}
	if m.Step > step {
		return reject(ReasonFutureStep, "progress of step %d, the run is at step %d", m.Step, step)
	}
	if m.Done < 0 {
		return reject(ReasonRange, "%d probes done", m.Done)
	}
	return nil
}

// Validate checks an announcement against the receiver's limits.
func (m *Announce) Validate(lim Limits) error {
	if err := version(int64(m.Version)); err != nil {
		return err
	}
	if err := ValidRunID(m.Run); err != nil {
		return reject(ReasonRun, "%v", err)
	}
	if m.Snap.Step < 0 || m.Snap.Step > math.MaxUint32 {
		return reject(ReasonRange, "snapshot of step %d", m.Snap.Step)
	}
	return m.Snap.Validate(lim)
}

// Validate checks a chunk request's shape.
func (m *ChunkRequest) Validate() error {
	if err := version(int64(m.Version)); err != nil {
		return err
	}
	if err := ValidRunID(m.Run); err != nil {
		return reject(ReasonRun, "%v", err)
	}
	if m.Step < 0 || m.Index < 0 {
		return reject(ReasonRange, "chunk %d of step %d", m.Index, m.Step)
	}
	return nil
}

// Validate checks that a snapshot reference describes what SplitSnapshot
// makes, within the limits: a size up to MaxSnapshot, cut into Chunks
// non-empty pieces of equal length (the last shorter), each at least
// MinChunk bytes (unless it is the only one) and each fitting in a message.
// A receiver that checks a reference before it fetches holds no more than
// the limit, whatever the reference claims.
func (s *SnapshotRef) Validate(lim Limits) error {
	if s.Size < 0 || s.Chunks < 1 {
		return reject(ReasonRange, "snapshot of %d bytes in %d chunks", s.Size, s.Chunks)
	}
	if lim.MaxSnapshot > 0 && s.Size > lim.MaxSnapshot {
		return reject(ReasonSize, "snapshot of %d bytes, over the limit of %d", s.Size, lim.MaxSnapshot)
	}
	cs := chunkLen(s.Size, s.Chunks)
	switch {
	case s.Size == 0 && s.Chunks != 1:
		return reject(ReasonRange, "an empty snapshot in %d chunks", s.Chunks)
	case s.Size > 0 && (s.Chunks-1)*cs >= s.Size:
		return reject(ReasonRange, "%d bytes do not fill %d chunks", s.Size, s.Chunks)
	case s.Chunks > 1 && cs < MinChunk:
		return reject(ReasonRange, "chunks of %d bytes, at least %d", cs, MinChunk)
	case lim.MaxPayload > 0 && cs > ChunkSize(lim.MaxPayload):
		return reject(ReasonSize, "chunks of %d bytes do not fit the server's max payload of %d", cs, lim.MaxPayload)
	}
	return nil
}

// Validate checks a snapshot's shape: what a sampler can check before the
// model interprets it.
func (m *Snapshot) Validate(lim Limits) error {
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
	if n := len(m.Problem.Text); n > MaxProblemText {
		return reject(ReasonSize, "problem text of %d bytes, at most %d", n, MaxProblemText)
	}
	if m.Problem.Text == "" && len(m.Problem.Files) > 0 {
		return reject(ReasonLength, "problem files without a problem text")
	}
	for name := range m.Problem.Files {
		if name == "" || len(name) > MaxFileName {
			return reject(ReasonLength, "a problem file's name of %d bytes (want 1 to %d)", len(name), MaxFileName)
		}
	}
	total := 0
	for _, c := range m.Points.Counts {
		if c < 0 {
			return reject(ReasonRange, "negative point count %d", c)
		}
		total += c // at most 64 counts of at most 2³¹ each: no overflow
	}
	// Points drawn from a seed may not outnumber what the limit could
	// carry explicitly (a coordinate is 8 bytes).
	if lim.MaxSnapshot > 0 && total > lim.MaxSnapshot/8 {
		return reject(ReasonSize, "%d points to draw, at most %d within the snapshot limit of %d bytes", total, lim.MaxSnapshot/8, lim.MaxSnapshot)
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

// Validate checks a chunk against itself: its place is the one
// SplitSnapshot gives chunk Index of Count in Size bytes.
func (m *Chunk) Validate() error {
	if err := version(int64(m.Version)); err != nil {
		return err
	}
	if err := ValidRunID(m.Run); err != nil {
		return reject(ReasonRun, "%v", err)
	}
	if m.Count < 1 || m.Index < 0 || m.Index >= m.Count || m.Size < 0 {
		return reject(ReasonRange, "chunk %d of %d of %d bytes", m.Index, m.Count, m.Size)
	}
	cs := chunkLen(m.Size, m.Count)
	off := m.Index * cs
	if m.Offset != off || len(m.Data) != min(cs, m.Size-off) {
		return reject(ReasonRange, "chunk %d of %d at %d+%d of %d bytes, want %d+%d", m.Index, m.Count, m.Offset, len(m.Data), m.Size, off, min(cs, m.Size-off))
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
func sortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}
