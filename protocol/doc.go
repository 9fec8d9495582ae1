// Package protocol is ntkbus's wire format: the messages between the
// coordinator and the samplers, their subjects, their msgpack encoding and
// their validation. It knows no NATS and no math.
//
// Every message is a msgpack map with short keys and a version field "v".
// Float vectors (θ, quotients, points) travel as one msgpack bin of
// little-endian IEEE-754 bytes, several times faster than msgpack's
// element-by-element float arrays, and decode into reused buffers.
//
// Subjects, under one configurable prefix (default "ntkbus"); <id> is the
// identity of the sender's credential, which a server's permissions tie to
// it (see Subjects):
//
//	<prefix>.announce.<run>       a run has work (and its snapshot): idle samplers pull, and prefetch
//	<prefix>.pull.<run>.<id>      an idle sampler asks for a batch; answered on _INBOX_<id>.>
//	<prefix>.snap.<run>.<id>      snapshot chunk requests, answered on _INBOX_<id>.>
//	<prefix>.results.<run>.<id>   progress, results and errors of <id>'s batches
//
// Snapshots larger than a message (the wave network's θ is 4 MB; a NATS
// server's default max payload is 1 MB) are split into chunks that a
// sampler pulls on demand and an Assembler rebuilds, verified by SHA-256.
//
// Decoding is done by hand over the input bytes: it never panics, checks
// every declared length against the bytes left, and never allocates more
// than a small multiple of the input's size. Validate bounds every number
// before anything is fetched or allocated from it (Limits). A message that
// fails decoding or Validate yields a RejectError whose Reason is counted.
package protocol
