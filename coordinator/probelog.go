package coordinator

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"

	"ntkbus/model"
)

// probesFile is a run's probe log: every probe result that arrived from a
// backend since the last checkpoint, appended as it arrives, so that a run
// that stopped (an error, a signal, kill -9) computes none of them again.
//
// The file is a header line, then one record per probe:
//
//	ntkbus probes <version> <run fingerprint> <width>
//	step uint32, j uint32, n uint32, n float64 (little-endian), sum [32]byte
//
// where each record's sum is the SHA-256 of the previous sum (the first:
// of the header line) and the record's own bytes before it: a chain over
// the whole file, so that a changed, moved or inserted byte anywhere is
// found. A last record cut short (a kill during a write) is dropped.
const probesFile = "probes.log"

const probeLogVersion = 1

// probeLog is a run's probe log: the records read back from an earlier
// session that are still to be used, and the file open for appending.
type probeLog struct {
	path   string
	header string
	width  int
	f      *os.File
	sum    [32]byte // the chain's last sum
	size   int64    // bytes of the header and whole records
	// kept are the results read back, by step and probe index, until the
	// step that needs them takes them; keptBytes bounds their memory.
	kept      map[int]map[int][]float64
	keptBytes int64
	read      int // records read back (for the log)
	// step is the step whose results are being logged, and done its
	// probes logged or served, so that none is logged twice.
	step int
	done bitset
	buf  []byte
}

func probeLogHeader(fingerprint string, width int) string {
	return fmt.Sprintf("ntkbus probes %d %s %d\n", probeLogVersion, fingerprint, width)
}

// probeLimits says which records a run's log may hold: probe indices below
// maxJ(step), and at most maxBytes bytes in all.
type probeLimits struct {
	steps      int
	init, each int // probe indices at step 0, and at later steps, are below these
	width      int
}

func (l probeLimits) maxJ(step int) int {
	if step == 0 {
		return max(l.init, l.each)
	}
	return l.each
}

func (l probeLimits) recordBytes() int64 { return 12 + 8*int64(l.width) + 32 }

func (l probeLimits) maxBytes() int64 {
	records := float64(l.maxJ(0)) + float64(max(0, l.steps-1))*float64(l.each)
	return int64(math.Min(records*float64(l.recordBytes())+1024, math.MaxInt64/2))
}

// limitsOf returns the probe log's limits for a run's configuration.
func limitsOf(cfg *RunConfig, width int) probeLimits {
	return probeLimits{steps: cfg.Train.Steps, init: cfg.Train.InitProbes, each: cfg.Train.StepProbes, width: width}
}

// newProbeLog starts an empty log at path (replacing any file there).
func newProbeLog(path, fingerprint string, width int) (*probeLog, error) {
	pl := &probeLog{path: path, header: probeLogHeader(fingerprint, width), width: width, step: -1}
	if err := model.WriteFileAtomic(path, []byte(pl.header)); err != nil {
		return nil, err
	}
	pl.size = int64(len(pl.header))
	pl.sum = sha256.Sum256([]byte(pl.header))
	return pl, pl.open()
}

// readProbeLog reads and checks the log at path, keeping the results of
// steps from `from` on (as many as InitKeepBytes holds). It writes
// nothing: openProbeLog does, once the whole run folder has been checked.
// A missing file is an empty log (a run of an earlier version, or a log
// someone removed: its probes are computed again).
func readProbeLog(path, fingerprint string, from int, lim probeLimits) (*probeLog, error) {
	pl := &probeLog{path: path, header: probeLogHeader(fingerprint, lim.width), width: lim.width, step: -1, kept: map[int]map[int][]float64{}}
	pl.sum = sha256.Sum256([]byte(pl.header))
	pl.size = int64(len(pl.header))
	f, err := model.OpenRegular(path, lim.maxBytes()+int64(len(pl.header)))
	if errors.Is(err, os.ErrNotExist) {
		pl.size = -1 // written afresh by open
		return pl, nil
	}
	if err != nil {
		return nil, fmt.Errorf("probe log: %w", err)
	}
	defer f.Close()
	bad := func(format string, a ...any) error {
		return fmt.Errorf("probe log %s: %s; remove it to resume without its probes (they are computed again)", path, fmt.Sprintf(format, a...))
	}
	r := bufio.NewReaderSize(f, 1<<16)
	head := make([]byte, len(pl.header))
	if _, err := io.ReadFull(r, head); err != nil || string(head) != pl.header {
		if err == nil || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, bad("its header is not this run's (another run's log, or a changed one)")
		}
		return nil, fmt.Errorf("probe log: read %s: %w", path, err)
	}
	budget := int64(InitKeepBytes)
	rec := make([]byte, lim.recordBytes())
	for k := 0; ; k++ {
		n, err := io.ReadFull(r, rec[:12])
		if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
			_ = n // a record cut short: dropped, and cut off by open
			break
		}
		if err != nil {
			return nil, fmt.Errorf("probe log: read %s: %w", path, err)
		}
		step, j, w := binary.LittleEndian.Uint32(rec), int(binary.LittleEndian.Uint32(rec[4:])), binary.LittleEndian.Uint32(rec[8:])
		if int(w) != lim.width {
			return nil, bad("record %d has %d values, this run's probes %d", k, w, lim.width)
		}
		if _, err := io.ReadFull(r, rec[12:]); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("probe log: read %s: %w", path, err)
		}
		body := rec[:len(rec)-32]
		h := sha256.New()
		h.Write(pl.sum[:])
		h.Write(body)
		var sum [32]byte
		h.Sum(sum[:0])
		if string(sum[:]) != string(rec[len(body):]) {
			return nil, bad("record %d (step %d, probe %d) does not match its SHA-256: the file was changed or damaged since it was written", k, step, j)
		}
		pl.sum = sum
		pl.size += int64(len(rec))
		if int64(step) >= int64(lim.steps) || int(step) < from || j >= lim.maxJ(int(step)) {
			continue // before the checkpoint, beyond a shortened run, or a probe this run does not draw
		}
		d := make([]float64, lim.width)
		for i := range d {
			d[i] = math.Float64frombits(binary.LittleEndian.Uint64(body[12+8*i:]))
		}
		if !finiteAll(d...) {
			return nil, bad("record %d (step %d, probe %d) is not finite", k, step, j)
		}
		if budget < 8*int64(lim.width) {
			continue // beyond what memory keeps: computed again
		}
		byJ := pl.kept[int(step)]
		if byJ == nil {
			byJ = map[int][]float64{}
			pl.kept[int(step)] = byJ
		}
		if _, dup := byJ[j]; !dup {
			byJ[j] = d
			budget -= 8 * int64(lim.width)
			pl.keptBytes += 8 * int64(lim.width)
			pl.read++
		}
	}
	return pl, nil
}

// open opens the log for appending, after cutting off a record a kill left
// cut short (or writing a new file where there was none).
func (pl *probeLog) open() error {
	if pl.size < 0 {
		if err := model.WriteFileAtomic(pl.path, []byte(pl.header)); err != nil {
			return err
		}
		pl.size = int64(len(pl.header))
	}
	f, err := os.OpenFile(pl.path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("probe log: %w", err)
	}
	if err := f.Truncate(pl.size); err != nil {
		f.Close()
		return fmt.Errorf("probe log: %w", err)
	}
	if _, err := f.Seek(pl.size, io.SeekStart); err != nil {
		f.Close()
		return fmt.Errorf("probe log: %w", err)
	}
	pl.f = f
	return nil
}

// Close closes the log's file.
func (pl *probeLog) Close() error {
	if pl == nil || pl.f == nil {
		return nil
	}
	err := pl.f.Close()
	pl.f = nil
	return err
}

// at moves the log to step: results kept for earlier steps are dropped.
func (pl *probeLog) at(step int) {
	if step == pl.step {
		return
	}
	pl.step, pl.done = step, pl.done[:0]
	for s, byJ := range pl.kept {
		if s < step {
			pl.keptBytes -= 8 * int64(pl.width*len(byJ))
			delete(pl.kept, s)
		}
	}
}

// append writes one record (a result of the current step, of the log's
// width and finite) in one write.
func (pl *probeLog) append(j int, d []float64) error {
	rb := 12 + 8*len(d) + 32
	if cap(pl.buf) < rb {
		pl.buf = make([]byte, rb)
	}
	b := pl.buf[:rb]
	binary.LittleEndian.PutUint32(b, uint32(pl.step))
	binary.LittleEndian.PutUint32(b[4:], uint32(j))
	binary.LittleEndian.PutUint32(b[8:], uint32(len(d)))
	for i, v := range d {
		binary.LittleEndian.PutUint64(b[12+8*i:], math.Float64bits(v))
	}
	h := sha256.New()
	h.Write(pl.sum[:])
	h.Write(b[:rb-32])
	h.Sum(b[rb-32 : rb-32])
	if _, err := pl.f.Write(b); err != nil {
		return fmt.Errorf("probe log: %w", err)
	}
	copy(pl.sum[:], b[rb-32:])
	pl.size += int64(rb)
	return nil
}

// checkpointed is called once a checkpoint at step next is written: the
// records before it are no longer needed, and the file starts again
// empty unless it holds results of that step or later ones (logged in
// this session, by a step stopped part-way, or read back to be used).
func (pl *probeLog) checkpointed(next int) error {
	if pl.step >= next {
		return nil
	}
	for s := range pl.kept {
		if s >= next {
			return nil
		}
	}
	pl.kept = nil
	pl.keptBytes = 0
	if err := pl.f.Truncate(int64(len(pl.header))); err != nil {
		return fmt.Errorf("probe log: %w", err)
	}
	if _, err := pl.f.Seek(int64(len(pl.header)), io.SeekStart); err != nil {
		return fmt.Errorf("probe log: %w", err)
	}
	pl.size = int64(len(pl.header))
	pl.sum = sha256.Sum256([]byte(pl.header))
	return nil
}

// loggedBackend is a backend whose results go through a probe log: probes
// the log holds are served from it, the others computed by the backend
// and logged as they arrive.
type loggedBackend struct {
	Backend
	log *probeLog
}

// Probes serves probes [lo, hi) of w's step: first those read back from
// the log, in index order, then the backend's, logged before they are
// passed on. A result of the wrong width or not finite is passed on (to be
// refused and counted by whoever takes it) but not logged.
func (b *loggedBackend) Probes(ctx context.Context, w *Work, lo, hi int, emit func(j int, d []float64) error) error {
	pl := b.log
	step := int(w.Step)
	pl.at(step)
	if byJ := pl.kept[step]; len(byJ) > 0 {
		js := make([]int, 0, len(byJ))
		for j := range byJ {
			if j >= lo && j < hi {
				js = append(js, j)
			}
		}
		sort.Ints(js)
		for _, j := range js {
			d := byJ[j]
			delete(byJ, j)
			pl.keptBytes -= 8 * int64(len(d))
			pl.done.set(j)
			if err := emit(j, d); err != nil {
				return err
			}
		}
	}
	// The ranges still to compute; merged into one when they are many
	// (what was served is then skipped as it comes back).
	var rs [][2]int
	for j := lo; j < hi; j++ {
		if pl.done.has(j) {
			continue
		}
		if k := len(rs) - 1; k >= 0 && rs[k][1] == j {
			rs[k][1] = j + 1
		} else {
			rs = append(rs, [2]int{j, j + 1})
		}
	}
	if len(rs) > 16 {
		rs = [][2]int{{rs[0][0], rs[len(rs)-1][1]}}
	}
	logged := func(j int, d []float64) error {
		if pl.done.has(j) {
			return nil
		}
		if len(d) == pl.width && finiteAll(d...) {
			if err := pl.append(j, d); err != nil {
				return err
			}
			pl.done.set(j)
		}
		return emit(j, d)
	}
	for _, rg := range rs {
		if err := b.Backend.Probes(ctx, w, rg[0], rg[1], logged); err != nil {
			return err
		}
	}
	return nil
}

// bitset is a set of probe indices.
type bitset []uint64

func (b bitset) has(j int) bool { return j/64 < len(b) && b[j/64]&(1<<(j%64)) != 0 }

func (b *bitset) set(j int) {
	for len(*b) <= j/64 {
		*b = append(*b, 0)
	}
	(*b)[j/64] |= 1 << (j % 64)
}

// Audit is the wrapped backend's audit.
func (b *loggedBackend) Audit() Audit { return AuditOf(b.Backend) }

// Unwrap returns the wrapped backend.
func (b *loggedBackend) Unwrap() Backend { return b.Backend }
