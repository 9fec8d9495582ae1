package protocol

import (
	"crypto/sha256"
	"errors"
	"fmt"
)

// ChunkOverhead bounds the bytes a Chunk message adds to its data: the map
// header, nine short keys, a run id of at most 64 bytes, six integers of at
// most 9 bytes, the 32-byte sum and two bin headers.
const ChunkOverhead = 1 + 9*8 + (2 + 64) + 6*9 + (2 + 32) + 5 + 16

// ChunkSize is the data per chunk for a server's max payload (NATS defaults
// to 1 MB), so that every Chunk message fits.
func ChunkSize(maxPayload int) int {
	return max(maxPayload-ChunkOverhead, 1)
}

// SplitSnapshot cuts an encoded snapshot into chunks of at most maxChunk
// bytes (sub-slices, no copies) and returns its reference.
func SplitSnapshot(encoded []byte, step int64, maxChunk int) (SnapshotRef, [][]byte) {
	ref := SnapshotRef{Step: step, Size: len(encoded), Sum: sha256.Sum256(encoded)}
	var chunks [][]byte
	for off := 0; off < len(encoded) || off == 0; off += maxChunk {
		chunks = append(chunks, encoded[off:min(off+maxChunk, len(encoded))])
		if len(encoded) == 0 {
			break
		}
	}
	ref.Chunks = len(chunks)
	return ref, chunks
}

// ErrStaleChunk is returned for a chunk of an older snapshot than the one
// being assembled: it is dropped.
var ErrStaleChunk = errors.New("chunk of an older snapshot")

// Assembler rebuilds a snapshot from its chunks in any order. It keeps only
// the newest snapshot: a chunk of a newer step discards a partial older one,
// so a slow sampler never piles up stale snapshots. It reuses its buffer.
type Assembler struct {
	run     string
	ref     SnapshotRef // the newest snapshot seen
	buf     []byte
	have    []bool
	got     int
	live    bool // assembling ref now
	started bool
}

// Start begins assembling ref of run (a sampler knows ref from the work
// request or an announcement), unless it is already under way.
func (a *Assembler) Start(run string, ref SnapshotRef) {
	if a.live && a.run == run && a.ref == ref {
		return
	}
	a.run, a.ref, a.live, a.started = run, ref, true, true
	if cap(a.buf) < ref.Size {
		a.buf = make([]byte, ref.Size)
	}
	a.buf = a.buf[:ref.Size]
	if cap(a.have) < ref.Chunks {
		a.have = make([]bool, ref.Chunks)
	}
	a.have = a.have[:ref.Chunks]
	for i := range a.have {
		a.have[i] = false
	}
	a.got = 0
}

// Want reports whether chunk i is still missing.
func (a *Assembler) Want(i int) bool { return a.live && i >= 0 && i < len(a.have) && !a.have[i] }

// Add takes a chunk. When it completes the snapshot and the SHA-256
// matches, it returns the encoded snapshot (valid until the next Start).
func (a *Assembler) Add(c *Chunk) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if !a.started || c.Run != a.run || c.Step > a.ref.Step {
		// A newer snapshot than the one expected: switch to it.
		a.Start(c.Run, SnapshotRef{Step: c.Step, Size: c.Size, Chunks: c.Count, Sum: c.Sum})
	}
	if c.Step < a.ref.Step {
		return nil, ErrStaleChunk
	}
	if !a.live {
		return nil, nil // that snapshot is already complete
	}
	if c.Size != a.ref.Size || c.Count != a.ref.Chunks || c.Sum != a.ref.Sum {
		return nil, reject(ReasonRange, "chunk of step %d does not match the snapshot being assembled (size %d/%d, chunks %d/%d)", c.Step, c.Size, a.ref.Size, c.Count, a.ref.Chunks)
	}
	if a.have[c.Index] {
		return nil, nil // a duplicate: idempotent
	}
	copy(a.buf[c.Offset:], c.Data)
	a.have[c.Index] = true
	a.got++
	if a.got < len(a.have) {
		return nil, nil
	}
	if sha256.Sum256(a.buf) != a.ref.Sum {
		a.live = false
		return nil, reject(ReasonChecksum, "snapshot of step %d: SHA-256 mismatch after %d chunks", a.ref.Step, a.got)
	}
	a.live = false
	return a.buf, nil
}

// Missing lists the chunks not yet received.
func (a *Assembler) Missing() []int {
	var m []int
	for i, h := range a.have {
		if !h {
			m = append(m, i)
		}
	}
	return m
}

// String describes the assembly, for logs.
func (a *Assembler) String() string {
	return fmt.Sprintf("run %s step %d: %d of %d chunks", a.run, a.ref.Step, a.got, len(a.have))
}
