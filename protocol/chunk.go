package protocol

import (
	"crypto/sha256"
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

// chunkLen is the data length of every chunk but the last when size bytes
// are cut into count chunks.
func chunkLen(size, count int) int {
	if count < 1 {
		return 0
	}
	return (size + count - 1) / count
}

// SplitSnapshot cuts an encoded snapshot into as few chunks of at most
// maxChunk bytes as it takes, all of equal length but the last (sub-slices,
// no copies), and returns its reference. The reference alone fixes where
// every chunk lies, so a receiver checks each chunk's place.
func SplitSnapshot(encoded []byte, step int64, maxChunk int) (SnapshotRef, [][]byte) {
	maxChunk = max(maxChunk, 1)
	ref := SnapshotRef{Step: step, Size: len(encoded), Sum: sha256.Sum256(encoded)}
	ref.Chunks = max(1, (len(encoded)+maxChunk-1)/maxChunk)
	cs := chunkLen(len(encoded), ref.Chunks)
	chunks := make([][]byte, ref.Chunks)
	for i := range chunks {
		lo := min(i*cs, len(encoded))
		chunks[i] = encoded[lo:min(lo+cs, len(encoded))]
	}
	return ref, chunks
}

// ChunkOffset is where chunk i of ref starts.
func ChunkOffset(ref SnapshotRef, i int) int { return i * chunkLen(ref.Size, ref.Chunks) }

// Assembler rebuilds one snapshot from its chunks, in any order. It holds
// only chunks that arrived (each checked against the reference), and
// allocates the whole snapshot only once every byte of it is there: no
// number a message claims makes it allocate. It reuses its buffers.
type Assembler struct {
	run   string
	ref   SnapshotRef
	live  bool
	parts map[int][]byte
	free  [][]byte
	buf   []byte
}

// Start begins assembling ref of run, unless it is already under way. The
// caller has checked ref against its limits (SnapshotRef.Validate).
func (a *Assembler) Start(run string, ref SnapshotRef) {
	if a.live && a.run == run && a.ref == ref {
		return
	}
	a.run, a.ref, a.live = run, ref, true
	if a.parts == nil {
		a.parts = map[int][]byte{}
	}
	for i, p := range a.parts {
		a.free = append(a.free, p[:0])
		delete(a.parts, i)
	}
}

// Add takes a chunk of the snapshot being assembled. When it completes the
// snapshot and the SHA-256 matches, it returns the encoded snapshot (valid
// until the next Start). A chunk of another snapshot is an error.
func (a *Assembler) Add(c *Chunk) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if !a.live {
		return nil, reject(ReasonRange, "chunk of run %s step %d: no snapshot is being assembled", c.Run, c.Step)
	}
	if c.Run != a.run || c.Step != a.ref.Step || c.Size != a.ref.Size || c.Count != a.ref.Chunks || c.Sum != a.ref.Sum {
		return nil, reject(ReasonRange, "chunk of run %s step %d (%d bytes, %d chunks) is not of the snapshot being assembled (run %s step %d, %d bytes, %d chunks)",
			c.Run, c.Step, c.Size, c.Count, a.run, a.ref.Step, a.ref.Size, a.ref.Chunks)
	}
	if _, dup := a.parts[c.Index]; dup {
		return nil, nil // a duplicate: idempotent
	}
	var p []byte
	if k := len(a.free); k > 0 {
		p, a.free = a.free[k-1], a.free[:k-1]
	}
	a.parts[c.Index] = append(p, c.Data...)
	if len(a.parts) < a.ref.Chunks {
		return nil, nil
	}
	a.buf = a.buf[:0]
	for i := 0; i < a.ref.Chunks; i++ {
		a.buf = append(a.buf, a.parts[i]...)
	}
	a.live = false
	if sha256.Sum256(a.buf) != a.ref.Sum {
		return nil, reject(ReasonChecksum, "snapshot of step %d: SHA-256 mismatch after %d chunks", a.ref.Step, a.ref.Chunks)
	}
	return a.buf, nil
}

// String describes the assembly, for logs.
func (a *Assembler) String() string {
	return fmt.Sprintf("run %s step %d: %d of %d chunks", a.run, a.ref.Step, len(a.parts), a.ref.Chunks)
}
