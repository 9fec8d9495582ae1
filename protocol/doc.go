// Package protocol is ntkbus's wire format: the messages between the
// coordinator and the samplers, their subjects, their msgpack encoding and
// their validation. It knows no NATS and no math.
//
// Every message is a msgpack map with short keys and a version field "v".
// Float vectors (θ, quotients, points) travel as one msgpack bin of
// little-endian IEEE-754 bytes, several times faster than msgpack's
// element-by-element float arrays, and decode into reused buffers.
//
// Subjects, under one configurable prefix (default "ntkbus"):
//
//	<prefix>.work               work requests; samplers' queue group <prefix>-samplers
//	<prefix>.snap.<run>         snapshot chunk requests, answered by the coordinator
//	<prefix>.announce.<run>     announcements of a new snapshot (idle samplers prefetch)
//	<prefix>.results.<run>.<t>  results: the reply subject of each work request
//
// Snapshots larger than a message (the wave network's θ is 4 MB; a NATS
// server's default max payload is 1 MB) are split into chunks that a
// sampler pulls on demand and an Assembler rebuilds, verified by SHA-256.
//
// Decoding never panics and never allocates more than the input's size;
// a message that fails decoding or Validate yields a RejectError whose
// Reason the coordinator counts.
package protocol
