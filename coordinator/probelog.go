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
	"ntkbus/protocol"
)

// probesFile is a run's probe log: every probe result that arrived from a
// backend since the last checkpoint, appended as it arrives, so that a run
// that stopped (an error, a signal, kill -9) computes none of them again.
//
// The file is a header line, then records of two kinds:
//
//	ntkbus probes <version> <run fingerprint> <width>
//	a result:     step uint32, j uint32, n uint32, k uint8, sender [k]byte, n float64, sum [32]byte
//	a retraction: step uint32, 0xffffffff, 0 uint32, k uint8, sender [k]byte, r uint8, reason [r]byte, sum [32]byte
//
// (little-endian), where each record's sum is the SHA-256 of the previous
// sum (the first: of the header line) and the record's own bytes before
// it: a chain over the whole file, so that a changed, moved or inserted
// byte anywhere is found. A last record cut short (a kill during a write)
// is dropped. sender is the identity the bus's server vouched for (empty
// for a result this process computed); a retraction says that sender was
// caught forging at that step, so a resume drops every result it gave the
// step before, and keeps it out. Version 1 logs (results without a sender,
// no retractions) are read, and written again as version 2.
const probesFile = "probes.log"

const probeLogVersion = 2

// retractionMark is a retraction record's j.
const retractionMark = 0xffffffff

// maxSenderBytes bounds a record's sender and reason (a subject token).
const maxSenderBytes = 64

// probeLog is a run's probe log: the records read back from an earlier
// session that are still to be used, and the file open for appending.
type probeLog struct {
	path    string
	header  string
	version int // of the file read back; open writes it again at probeLogVersion if older
	width   int
	f       *os.File
	sum     [32]byte // the chain's last sum
	size    int64    // bytes of the header and whole records
	// kept are the results read back, by step and probe index, until the
	// step that needs them takes them; keptBytes bounds their memory.
	kept      map[int]map[int]keptProbe
	keptBytes int64
	read      int // records read back (for the log)
	// retracted names the identities the log says were caught forging,
	// with the reason: a resumed run keeps them out.
	retracted map[string]string
	// step is the step whose results are being logged, and done its
	// probes logged or served, so that none is logged twice; from names
	// each one's sender, so that what a sender caught later gave is found.
	step int
	done bitset
	from map[int]string
	buf  []byte
	err  error // a retraction that could not be written
}

// keptProbe is a result read back and the identity that sent it.
type keptProbe struct {
	d    []float64
	from string
}

func probeLogHeader(version int, fingerprint string, width int) string {
	return fmt.Sprintf("ntkbus probes %d %s %d\n", version, fingerprint, width)
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

func (l probeLimits) recordBytes() int64 { return 13 + maxSenderBytes + 8*int64(l.width) + 32 }

func (l probeLimits) maxBytes() int64 {
	// Every result may be retracted once and computed again (by identities
	// caught one by one), each retraction a short record.
	records := 4 * (float64(l.maxJ(0)) + float64(max(0, l.steps-1))*float64(l.each))
	return int64(math.Min(records*float64(l.recordBytes())+1024, math.MaxInt64/2))
}

// limitsOf returns the probe log's limits for a run's configuration.
func limitsOf(cfg *RunConfig, width int) probeLimits {
	return probeLimits{steps: cfg.Train.Steps, init: cfg.Train.InitProbes, each: cfg.Train.StepProbes, width: width}
}

// newProbeLog starts an empty log at path (replacing any file there).
func newProbeLog(path, fingerprint string, width int) (*probeLog, error) {
	pl := &probeLog{path: path, header: probeLogHeader(probeLogVersion, fingerprint, width), version: probeLogVersion, width: width, step: -1}
	if err := model.WriteFileAtomic(path, []byte(pl.header)); err != nil {
		return nil, err
	}
	pl.size = int64(len(pl.header))
	pl.sum = sha256.Sum256([]byte(pl.header))
	return pl, pl.open()
}

// readProbeLog reads and checks the log at path, keeping the results of
// steps from `from` on (as many as InitKeepBytes holds) that no later
// retraction took back. It writes nothing: openProbeLog does, once the
// whole run folder has been checked. A missing file is an empty log (a run
// of an earlier version, or a log someone removed: its probes are
// computed again).
func readProbeLog(path, fingerprint string, from int, lim probeLimits) (*probeLog, error) {
	pl := &probeLog{path: path, header: probeLogHeader(probeLogVersion, fingerprint, lim.width), version: probeLogVersion, width: lim.width, step: -1,
		kept: map[int]map[int]keptProbe{}, retracted: map[string]string{}}
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
	if _, err := io.ReadFull(r, head); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, bad("its header is not this run's (another run's log, or a changed one)")
		}
		return nil, fmt.Errorf("probe log: read %s: %w", path, err)
	}
	switch string(head) {
	case pl.header:
	case probeLogHeader(1, fingerprint, lim.width):
		pl.version = 1
	default:
		return nil, bad("its header is not this run's (another run's log, or a changed one)")
	}
	pl.sum = sha256.Sum256(head)
	budget := int64(InitKeepBytes)
	senders := map[string]string{} // one string per identity
	rec := make([]byte, 0, 13+maxSenderBytes+max(8*lim.width, 1+maxSenderBytes)+32)
	// next reads n more bytes of the record; false at the end of the file
	// or in a record cut short (dropped, and cut off by open).
	var ioErr error
	next := func(n int) bool {
		m := len(rec)
		rec = rec[:m+n]
		_, err := io.ReadFull(r, rec[m:])
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			ioErr = fmt.Errorf("probe log: read %s: %w", path, err)
		}
		return err == nil
	}
	fixed := 12
	if pl.version >= 2 {
		fixed = 13
	}
records:
	for k := 0; ; k++ {
		rec = rec[:0]
		if !next(fixed) {
			break
		}
		step, j, w := binary.LittleEndian.Uint32(rec), binary.LittleEndian.Uint32(rec[4:]), binary.LittleEndian.Uint32(rec[8:])
		sender, reason := "", ""
		if pl.version >= 2 {
			n := int(rec[12])
			if n > maxSenderBytes {
				return nil, bad("record %d names a sender of %d bytes", k, n)
			}
			if !next(n) {
				break
			}
			sender = string(rec[13:])
			if sender != "" && protocol.ValidIdentity(sender) != nil {
				return nil, bad("record %d names a sender that is no identity", k)
			}
			if s, ok := senders[sender]; ok {
				sender = s
			} else if len(senders) < 4*MaxAuditIdentities {
				senders[sender] = sender
			}
		}
		retraction := pl.version >= 2 && j == retractionMark
		switch {
		case retraction && (w != 0 || sender == ""):
			return nil, bad("record %d is a retraction of %d values by %q", k, w, sender)
		case retraction:
			at := len(rec)
			if !next(1) {
				break records
			}
			n := int(rec[at])
			if n == 0 || n > maxSenderBytes {
				return nil, bad("record %d gives a reason of %d bytes", k, n)
			}
			if !next(n) {
				break records
			}
			reason = string(rec[at+1:])
		case int(w) != lim.width:
			return nil, bad("record %d has %d values, this run's probes %d", k, w, lim.width)
		default:
			if !next(8 * lim.width) {
				break records
			}
		}
		if !next(32) {
			break
		}
		body := rec[:len(rec)-32]
		h := sha256.New()
		h.Write(pl.sum[:])
		h.Write(body)
		var sum [32]byte
		h.Sum(sum[:0])
		if string(sum[:]) != string(rec[len(body):]) {
			if retraction {
				return nil, bad("record %d (a retraction at step %d) does not match its SHA-256: the file was changed or damaged since it was written", k, step)
			}
			return nil, bad("record %d (step %d, probe %d) does not match its SHA-256: the file was changed or damaged since it was written", k, step, j)
		}
		pl.sum = sum
		pl.size += int64(len(rec))
		if retraction {
			// Every result the sender gave the step before is dropped;
			// results logged after it are others' (it got no more work).
			if len(pl.retracted) < MaxAuditIdentities {
				pl.retracted[sender] = reason
			}
			for j, kp := range pl.kept[int(step)] {
				if kp.from == sender {
					delete(pl.kept[int(step)], j)
					budget += 8 * int64(lim.width)
					pl.keptBytes -= 8 * int64(lim.width)
					pl.read--
				}
			}
			continue
		}
		if int64(step) >= int64(lim.steps) || int(step) < from || int(j) >= lim.maxJ(int(step)) {
			continue // before the checkpoint, beyond a shortened run, or a probe this run does not draw
		}
		vals := body[fixed+len(sender):]
		d := make([]float64, lim.width)
		for i := range d {
			d[i] = math.Float64frombits(binary.LittleEndian.Uint64(vals[8*i:]))
		}
		if !finiteAll(d...) {
			return nil, bad("record %d (step %d, probe %d) is not finite", k, step, j)
		}
		if budget < 8*int64(lim.width) {
			continue // beyond what memory keeps: computed again
		}
		byJ := pl.kept[int(step)]
		if byJ == nil {
			byJ = map[int]keptProbe{}
			pl.kept[int(step)] = byJ
		}
		if _, dup := byJ[int(j)]; !dup {
			byJ[int(j)] = keptProbe{d: d, from: sender}
			budget -= 8 * int64(lim.width)
			pl.keptBytes += 8 * int64(lim.width)
			pl.read++
		}
	}
	if ioErr != nil {
		return nil, ioErr
	}
	return pl, nil
}

// open opens the log for appending, after cutting off a record a kill left
// cut short (or writing a new file where there was none). A log of an
// earlier version is written again in this one, with the results kept.
func (pl *probeLog) open() error {
	rewrite := pl.size >= 0 && pl.version != probeLogVersion
	if pl.size < 0 || rewrite {
		if err := model.WriteFileAtomic(pl.path, []byte(pl.header)); err != nil {
			return err
		}
		pl.size = int64(len(pl.header))
		pl.sum = sha256.Sum256([]byte(pl.header))
		pl.version = probeLogVersion
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
	if rewrite {
		steps := make([]int, 0, len(pl.kept))
		for step := range pl.kept {
			steps = append(steps, step)
		}
		sort.Ints(steps)
		for _, step := range steps {
			js := make([]int, 0, len(pl.kept[step]))
			for j := range pl.kept[step] {
				js = append(js, j)
			}
			sort.Ints(js)
			for _, j := range js {
				kp := pl.kept[step][j]
				if err := pl.append(step, j, kp.d, kp.from); err != nil {
					return err
				}
			}
		}
	}
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
	clear(pl.from)
	for s, byJ := range pl.kept {
		if s < step {
			pl.keptBytes -= 8 * int64(pl.width*len(byJ))
			delete(pl.kept, s)
		}
	}
}

// append writes one result record (of the log's width and finite) in one
// write.
func (pl *probeLog) append(step, j int, d []float64, sender string) error {
	rb := 13 + len(sender) + 8*len(d) + 32
	b := pl.record(rb, step, uint32(j), uint32(len(d)), sender)
	for i, v := range d {
		binary.LittleEndian.PutUint64(b[13+len(sender)+8*i:], math.Float64bits(v))
	}
	return pl.write(b)
}

// retract writes a retraction record: sender, caught forging for reason,
// gave step nothing that counts.
func (pl *probeLog) retract(step int, sender, reason string) error {
	if len(reason) > maxSenderBytes {
		reason = reason[:maxSenderBytes]
	}
	if reason == "" {
		reason = "forged"
	}
	rb := 13 + len(sender) + 1 + len(reason) + 32
	b := pl.record(rb, step, retractionMark, 0, sender)
	b[13+len(sender)] = byte(len(reason))
	copy(b[14+len(sender):], reason)
	return pl.write(b)
}

// record returns the buffer of a record of rb bytes with its fixed fields
// and sender written.
func (pl *probeLog) record(rb, step int, j, n uint32, sender string) []byte {
	if cap(pl.buf) < rb {
		pl.buf = make([]byte, rb)
	}
	b := pl.buf[:rb]
	binary.LittleEndian.PutUint32(b, uint32(step))
	binary.LittleEndian.PutUint32(b[4:], j)
	binary.LittleEndian.PutUint32(b[8:], n)
	b[12] = byte(len(sender))
	copy(b[13:], sender)
	return b
}

// write chains record b (its last 32 bytes are the sum) and writes it in
// one write.
func (pl *probeLog) write(b []byte) error {
	rb := len(b)
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
// and logged as they arrive, with the identity that sent them.
type loggedBackend struct {
	Backend
	log  *probeLog
	attr Attributor // the backend's, if it names senders
}

// logged wraps backend in the run's probe log. Around a backend that may
// take results back, the log takes them back too (retractingLog).
func logged(backend Backend, pl *probeLog) Backend {
	lb := &loggedBackend{Backend: backend, log: pl}
	lb.attr, _ = backend.(Attributor)
	r, ok := backend.(Retractor)
	if !ok {
		return lb
	}
	rl := &retractingLog{loggedBackend: lb, ret: r, caught: map[string]string{}, recorded: map[string]bool{}}
	if n, ok := backend.(Notifier); ok {
		n.NotifyRetraction(rl.caughtNow)
	}
	return rl
}

// Probes serves probes [lo, hi) of w's step: first those read back from
// the log, in index order, then the backend's, logged before they are
// passed on. A result of the wrong width or not finite is passed on (to be
// refused and counted by whoever takes it) but not logged.
func (b *loggedBackend) Probes(ctx context.Context, w *Work, lo, hi int, emit func(j int, d []float64) error) error {
	pl := b.log
	if pl.err != nil {
		return pl.err
	}
	step := int(w.Step)
	pl.at(step)
	if pl.from == nil {
		pl.from = map[int]string{}
	}
	if byJ := pl.kept[step]; len(byJ) > 0 {
		js := make([]int, 0, len(byJ))
		for j := range byJ {
			if j >= lo && j < hi {
				js = append(js, j)
			}
		}
		sort.Ints(js)
		for _, j := range js {
			kp := byJ[j]
			delete(byJ, j)
			pl.keptBytes -= 8 * int64(len(kp.d))
			pl.done.set(j)
			if kp.from != "" {
				pl.from[j] = kp.from
			}
			if err := emit(j, kp.d); err != nil {
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
			sender := ""
			if b.attr != nil {
				sender = b.attr.Sender()
			}
			if err := pl.append(step, j, d, sender); err != nil {
				return err
			}
			pl.done.set(j)
			if sender != "" {
				pl.from[j] = sender
			}
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

// retractingLog is a probe log around a backend that may take results
// back: what it takes back, the log does too.
type retractingLog struct {
	*loggedBackend
	ret Retractor
	// caught are the senders the backend said were caught (Notifier)
	// whose results have not been taken back yet, recorded those whose
	// retraction is in the log for the current step.
	caught   map[string]string
	recorded map[string]bool
	recStep  int
}

// caughtNow records at once that sender id was caught forging in the
// current step: from here on a resume never serves what it gave.
func (b *retractingLog) caughtNow(id, reason string) {
	b.caught[id] = reason
	b.record(b.log.step, id, reason)
}

// record writes sender id's retraction at step once.
func (b *retractingLog) record(step int, id, reason string) {
	pl := b.log
	if b.recStep != step {
		b.recStep = step
		clear(b.recorded)
	}
	if b.recorded[id] || protocol.ValidIdentity(id) != nil {
		return
	}
	b.recorded[id] = true
	if err := pl.retract(step, id, reason); err != nil && pl.err == nil {
		// The results are dropped all the same; the next call fails,
		// before a resume could serve them.
		pl.err = err
	}
}

// Retracted is what the backend takes back from senders caught forging,
// with every result of the step those senders gave that the log served
// (logged in an earlier session): each sender's retraction is in the log
// before its results are returned, so a resume never serves them.
func (b *retractingLog) Retracted(w *Work) []Retraction {
	rs := b.ret.Retracted(w)
	pl := b.log
	step := int(w.Step)
	seen := map[string]bool{}
	for _, r := range rs {
		seen[r.Identity] = true
	}
	for id, why := range b.caught {
		if !seen[id] {
			rs = append(rs, Retraction{Identity: id, Reason: why})
		}
	}
	clear(b.caught)
	for i := range rs {
		r := &rs[i]
		b.record(step, r.Identity, r.Reason)
		if step != pl.step {
			continue
		}
		for j, from := range pl.from {
			if from == r.Identity {
				r.Ranges = append(r.Ranges, [2]int{j, j + 1})
			}
		}
		for _, rg := range r.Ranges {
			for j := max(rg[0], 0); j < rg[1]; j++ {
				pl.done.clear(j)
				delete(pl.from, j)
			}
		}
	}
	return rs
}

// Held is the wrapped backend's count of probes held for checks.
func (b *loggedBackend) Held() int { return HeldBy(b.Backend) }

// bitset is a set of probe indices.
type bitset []uint64

func (b bitset) has(j int) bool { return j/64 < len(b) && b[j/64]&(1<<(j%64)) != 0 }

func (b bitset) clear(j int) {
	if j/64 < len(b) {
		b[j/64] &^= 1 << (j % 64)
	}
}

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
