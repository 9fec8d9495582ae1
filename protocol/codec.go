package protocol

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"github.com/vmihailenco/msgpack/v5"
)

// writer builds one msgpack map. Writes go to a bytes.Buffer, which cannot
// fail, so the encoder's errors are not checked.
type writer struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
}

func (w *writer) begin(fields int) {
	w.buf.Reset()
	if w.enc == nil {
		w.enc = msgpack.NewEncoder(&w.buf)
	}
	w.enc.EncodeMapLen(fields)
}

func (w *writer) key(k string)            { w.enc.EncodeString(k) }
func (w *writer) str(k, v string)         { w.key(k); w.enc.EncodeString(v) }
func (w *writer) int(k string, v int64)   { w.key(k); w.enc.EncodeInt(v) }
func (w *writer) uint(k string, v uint64) { w.key(k); w.enc.EncodeUint(v) }
func (w *writer) float(k string, v float64) {
	w.key(k)
	w.enc.EncodeFloat64(v)
}
func (w *writer) bytes(k string, v []byte) { w.key(k); w.enc.EncodeBytes(v) }

func (w *writer) ints(k string, v []int) {
	w.key(k)
	w.enc.EncodeArrayLen(len(v))
	for _, x := range v {
		w.enc.EncodeInt(int64(x))
	}
}

// floats writes v as one msgpack bin of little-endian IEEE-754 values.
func (w *writer) floats(k string, v []float64) {
	w.key(k)
	w.enc.EncodeBytesLen(8 * len(v))
	w.buf.Grow(8 * len(v))
	var b [8 * 64]byte
	for len(v) > 0 {
		n := min(len(v), 64)
		for i, x := range v[:n] {
			binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(x))
		}
		w.buf.Write(b[:8*n])
		v = v[n:]
	}
}

// out returns the encoded message appended to dst.
func (w *writer) out(dst []byte) []byte { return append(dst, w.buf.Bytes()...) }

// reader decodes one msgpack map from a byte slice. Every length it reads
// is checked against the bytes left before anything is allocated, so no
// input can make it allocate more than the input's size, and nothing panics.
type reader struct {
	data []byte
	br   bytes.Reader
	dec  *msgpack.Decoder
}

func (r *reader) reset(data []byte) {
	r.data = data
	r.br.Reset(data)
	if r.dec == nil {
		r.dec = msgpack.NewDecoder(&r.br)
	} else {
		r.dec.Reset(&r.br)
	}
}

func (r *reader) left() int { return r.br.Len() }

func malformed(format string, a ...any) *RejectError {
	return &RejectError{Reason: ReasonMalformed, Detail: fmt.Sprintf(format, a...)}
}

// mapLen reads a map header; the map needs at least two bytes per entry.
func (r *reader) mapLen() (int, error) {
	n, err := r.dec.DecodeMapLen()
	if err != nil {
		return 0, malformed("not a msgpack map: %v", err)
	}
	if n < 0 || n > r.left()/2 {
		return 0, malformed("map of %d entries in %d bytes", n, r.left())
	}
	return n, nil
}

// key reads a map key. The keys ntkbus writes are short (msgpack fixstr),
// and are compared in place without allocating; others go through the
// decoder.
func (r *reader) key() (string, error) {
	off := len(r.data) - r.left()
	if off < len(r.data) && r.data[off]&0xe0 == 0xa0 {
		n := int(r.data[off] & 0x1f)
		if off+1+n > len(r.data) {
			return "", malformed("map key: %d bytes declared, %d left", n, len(r.data)-off-1)
		}
		r.br.Seek(int64(1+n), io.SeekCurrent)
		return keyString(r.data[off+1 : off+1+n]), nil
	}
	k, err := r.dec.DecodeString()
	if err != nil {
		return "", malformed("map key: %v", err)
	}
	return k, nil
}

// keyString interns the protocol's own keys, so decoding them allocates
// nothing; an unknown key is copied.
func keyString(b []byte) string {
	switch string(b) {
	case "v":
		return "v"
	case "run":
		return "run"
	case "step":
		return "step"
	case "lo":
		return "lo"
	case "hi":
		return "hi"
	case "sampler":
		return "sampler"
	case "width":
		return "width"
	case "d":
		return "d"
	case "masked":
		return "masked"
	case "sec":
		return "sec"
	case "snap":
		return "snap"
	case "try":
		return "try"
	case "size":
		return "size"
	case "chunks":
		return "chunks"
	case "sum":
		return "sum"
	case "i":
		return "i"
	case "n":
		return "n"
	case "off":
		return "off"
	case "data":
		return "data"
	case "code":
		return "code"
	case "msg":
		return "msg"
	}
	return string(b)
}

func (r *reader) str(field string) (string, error) {
	s, err := r.dec.DecodeString()
	if err != nil {
		return "", malformed("%s: %v", field, err)
	}
	return s, nil
}

func (r *reader) int(field string) (int64, error) {
	v, err := r.dec.DecodeInt64()
	if err != nil {
		return 0, malformed("%s: %v", field, err)
	}
	return v, nil
}

// smallInt reads an int that must fit in an int32 (counts, indices).
func (r *reader) smallInt(field string) (int, error) {
	v, err := r.int(field)
	if err != nil {
		return 0, err
	}
	if v < math.MinInt32 || v > math.MaxInt32 {
		return 0, malformed("%s = %d is out of range", field, v)
	}
	return int(v), nil
}

func (r *reader) uint(field string) (uint64, error) {
	v, err := r.dec.DecodeUint64()
	if err != nil {
		return 0, malformed("%s: %v", field, err)
	}
	return v, nil
}

func (r *reader) float(field string) (float64, error) {
	v, err := r.dec.DecodeFloat64()
	if err != nil {
		return 0, malformed("%s: %v", field, err)
	}
	return v, nil
}

// binLen reads a bin header and checks the bytes are there.
func (r *reader) binLen(field string) (int, error) {
	n, err := r.dec.DecodeBytesLen()
	if err != nil {
		return 0, malformed("%s: %v", field, err)
	}
	if n < 0 || n > r.left() {
		return 0, malformed("%s: %d bytes declared, %d left", field, n, r.left())
	}
	return n, nil
}

// raw returns the next n bytes as a sub-slice of the input (no copy).
func (r *reader) raw(n int) []byte {
	off := len(r.data) - r.left()
	r.br.Seek(int64(n), io.SeekCurrent)
	return r.data[off : off+n]
}

// bytesInto reads a bin into dst's storage.
func (r *reader) bytesInto(field string, dst []byte) ([]byte, error) {
	n, err := r.binLen(field)
	if err != nil {
		return dst, err
	}
	return append(dst[:0], r.raw(n)...), nil
}

// floats reads a bin of little-endian float64 into dst's storage.
func (r *reader) floats(field string, dst []float64) ([]float64, error) {
	n, err := r.binLen(field)
	if err != nil {
		return dst, err
	}
	if n%8 != 0 {
		return dst, malformed("%s: %d bytes is not a whole number of float64", field, n)
	}
	b := r.raw(n)
	if cap(dst) < n/8 {
		dst = make([]float64, n/8)
	}
	dst = dst[:n/8]
	for i := range dst {
		dst[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
	}
	return dst, nil
}

// ints reads an array of integers into dst's storage (one byte per entry at least).
func (r *reader) ints(field string, dst []int) ([]int, error) {
	n, err := r.dec.DecodeArrayLen()
	if err != nil {
		return dst, malformed("%s: %v", field, err)
	}
	if n < 0 {
		return dst[:0], nil // nil array
	}
	if n > r.left() {
		return dst, malformed("%s: %d entries in %d bytes", field, n, r.left())
	}
	dst = dst[:0]
	for i := 0; i < n; i++ {
		v, err := r.smallInt(field)
		if err != nil {
			return dst, err
		}
		dst = append(dst, v)
	}
	return dst, nil
}

func (r *reader) skip() error {
	if err := r.dec.Skip(); err != nil {
		return malformed("skipping an unknown field: %v", err)
	}
	return nil
}

// done reports trailing bytes after the message.
func (r *reader) done() error {
	if r.left() != 0 {
		return malformed("%d bytes after the message", r.left())
	}
	return nil
}

// fields tracks which required keys a message had.
// fields reads a map, calling field for each key in the order they come;
// field reads the key's value (or skips it). Keys may come in any order;
// every name in required must be among them.
func (r *reader) fields(required []string, field func(r *reader, k string) error) error {
	n, err := r.mapLen()
	if err != nil {
		return err
	}
	var seen uint64
	for i := 0; i < n; i++ {
		k, err := r.key()
		if err != nil {
			return err
		}
		if err := field(r, k); err != nil {
			return err
		}
		for j, name := range required {
			if name == k {
				seen |= 1 << j
			}
		}
	}
	for j, name := range required {
		if seen&(1<<j) == 0 {
			return malformed("missing field %q", name)
		}
	}
	return nil
}

// message reads a whole top-level message: a map with the version under
// "v" and the required keys, nothing after it, and a version this build
// speaks.
func (r *reader) message(data []byte, v *int, required []string, field func(r *reader, k string) error) error {
	r.reset(data)
	hasV := false
	err := r.fields(required, func(r *reader, k string) (err error) {
		if k != "v" {
			return field(r, k)
		}
		hasV = true
		*v, err = r.smallInt(k)
		return err
	})
	if err != nil {
		return err
	}
	if !hasV {
		return malformed("missing field %q", "v")
	}
	if err := r.done(); err != nil {
		return err
	}
	return version(int64(*v))
}

// version checks the message's version field.
func version(v int64) error {
	if v != Version {
		return &RejectError{Reason: ReasonVersion, Detail: fmt.Sprintf("protocol version %d, this build speaks %d: upgrade the older side", v, Version)}
	}
	return nil
}
