package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
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

// reader decodes one msgpack map from a byte slice, by hand: every length
// it reads is checked against the bytes left before anything is allocated,
// so no input makes it allocate more than a small multiple of the input's
// size (strings and float vectors are at most the input's bytes; maps and
// arrays of small structures are capped), and nothing panics. The msgpack
// library's decoder is not used: it allocates up to 1 MB for a string or
// bin that merely claims to be large.
type reader struct {
	data []byte
	off  int
}

func (r *reader) reset(data []byte) { r.data, r.off = data, 0 }

func (r *reader) left() int { return len(r.data) - r.off }

func malformed(format string, a ...any) *RejectError {
	return &RejectError{Reason: ReasonMalformed, Detail: fmt.Sprintf(format, a...)}
}

var errShort = errors.New("unexpected end of input")

// byte reads one byte.
func (r *reader) byte() (byte, error) {
	if r.off >= len(r.data) {
		return 0, errShort
	}
	c := r.data[r.off]
	r.off++
	return c, nil
}

// be reads an n-byte big-endian unsigned integer (n = 1, 2, 4 or 8).
func (r *reader) be(n int) (uint64, error) {
	if r.left() < n {
		return 0, errShort
	}
	var v uint64
	for _, b := range r.data[r.off : r.off+n] {
		v = v<<8 | uint64(b)
	}
	r.off += n
	return v, nil
}

// length reads an n-byte length and checks that at least unit·length bytes
// are left for what it counts.
func (r *reader) length(n, unit int) (int, error) {
	v, err := r.be(n)
	if err != nil {
		return 0, err
	}
	if v > uint64(r.left()/unit) {
		return 0, fmt.Errorf("%d entries declared, %d bytes left", v, r.left())
	}
	return int(v), nil
}

// header reads a container header: a map (2 bytes at least per entry) or an
// array (1 byte). nil counts as an empty array.
func (r *reader) header(isMap bool) (int, error) {
	c, err := r.byte()
	if err != nil {
		return 0, err
	}
	switch {
	case isMap && c >= 0x80 && c <= 0x8f:
		n := int(c & 0x0f)
		if n > r.left()/2 {
			return 0, fmt.Errorf("map of %d entries in %d bytes", n, r.left())
		}
		return n, nil
	case isMap && c == 0xde:
		return r.length(2, 2)
	case isMap && c == 0xdf:
		return r.length(4, 2)
	case !isMap && c >= 0x90 && c <= 0x9f:
		n := int(c & 0x0f)
		if n > r.left() {
			return 0, fmt.Errorf("array of %d entries in %d bytes", n, r.left())
		}
		return n, nil
	case !isMap && c == 0xdc:
		return r.length(2, 1)
	case !isMap && c == 0xdd:
		return r.length(4, 1)
	case !isMap && c == 0xc0:
		return 0, nil
	}
	return 0, fmt.Errorf("code 0x%02x is not a %s", c, map[bool]string{true: "map", false: "array"}[isMap])
}

// mapLen reads a map header.
func (r *reader) mapLen() (int, error) {
	n, err := r.header(true)
	if err != nil {
		return 0, malformed("not a msgpack map: %v", err)
	}
	return n, nil
}

// strBytes reads a str (or nil) and returns its bytes, a sub-slice of the input.
func (r *reader) strBytes() ([]byte, error) {
	c, err := r.byte()
	if err != nil {
		return nil, err
	}
	var n int
	switch {
	case c >= 0xa0 && c <= 0xbf:
		n = int(c & 0x1f)
		if n > r.left() {
			return nil, fmt.Errorf("string of %d bytes, %d left", n, r.left())
		}
	case c == 0xd9:
		n, err = r.length(1, 1)
	case c == 0xda:
		n, err = r.length(2, 1)
	case c == 0xdb:
		n, err = r.length(4, 1)
	case c == 0xc0:
		return nil, nil
	default:
		return nil, fmt.Errorf("code 0x%02x is not a string", c)
	}
	if err != nil {
		return nil, err
	}
	return r.raw(n), nil
}

// key reads a map key. The protocol's own keys are interned, so decoding
// them allocates nothing; an unknown key is copied.
func (r *reader) key() (string, error) {
	b, err := r.strBytes()
	if err != nil {
		return "", malformed("map key: %v", err)
	}
	return keyString(b), nil
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
	case "inst":
		return "inst"
	case "tok":
		return "tok"
	case "beat":
		return "beat"
	case "done":
		return "done"
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
	b, err := r.strBytes()
	if err != nil {
		return "", malformed("%s: %v", field, err)
	}
	return string(b), nil
}

// integer reads any msgpack integer into an int64 (uint64 above MaxInt64 is an error).
func (r *reader) integer() (int64, error) {
	c, err := r.byte()
	if err != nil {
		return 0, err
	}
	switch {
	case c <= 0x7f:
		return int64(c), nil
	case c >= 0xe0:
		return int64(int8(c)), nil
	case c >= 0xcc && c <= 0xcf:
		v, err := r.be(1 << (c - 0xcc))
		if err != nil {
			return 0, err
		}
		if v > math.MaxInt64 {
			return 0, fmt.Errorf("%d overflows int64", v)
		}
		return int64(v), nil
	case c >= 0xd0 && c <= 0xd3:
		n := 1 << (c - 0xd0)
		v, err := r.be(n)
		if err != nil {
			return 0, err
		}
		shift := 64 - 8*n // sign-extend
		return int64(v<<shift) >> shift, nil
	}
	return 0, fmt.Errorf("code 0x%02x is not an integer", c)
}

func (r *reader) int(field string) (int64, error) {
	v, err := r.integer()
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

// uint reads a non-negative integer, the whole uint64 range.
func (r *reader) uint(field string) (uint64, error) {
	if r.off < len(r.data) && r.data[r.off] == 0xcf {
		r.off++
		v, err := r.be(8)
		if err != nil {
			return 0, malformed("%s: %v", field, err)
		}
		return v, nil
	}
	v, err := r.int(field)
	if err != nil {
		return 0, err
	}
	if v < 0 {
		return 0, malformed("%s = %d is negative", field, v)
	}
	return uint64(v), nil
}

// float reads a float32, float64 or integer as a float64.
func (r *reader) float(field string) (float64, error) {
	if r.off < len(r.data) {
		switch r.data[r.off] {
		case 0xcb:
			r.off++
			v, err := r.be(8)
			if err != nil {
				return 0, malformed("%s: %v", field, err)
			}
			return math.Float64frombits(v), nil
		case 0xca:
			r.off++
			v, err := r.be(4)
			if err != nil {
				return 0, malformed("%s: %v", field, err)
			}
			return float64(math.Float32frombits(uint32(v))), nil
		}
	}
	v, err := r.int(field)
	return float64(v), err
}

// binLen reads a bin header (nil is an empty bin) and checks the bytes are there.
func (r *reader) binLen(field string) (int, error) {
	c, err := r.byte()
	if err != nil {
		return 0, malformed("%s: %v", field, err)
	}
	var n int
	switch c {
	case 0xc4:
		n, err = r.length(1, 1)
	case 0xc5:
		n, err = r.length(2, 1)
	case 0xc6:
		n, err = r.length(4, 1)
	case 0xc0:
		return 0, nil
	default:
		return 0, malformed("%s: code 0x%02x is not a bin", field, c)
	}
	if err != nil {
		return 0, malformed("%s: %v", field, err)
	}
	return n, nil
}

// raw returns the next n bytes as a sub-slice of the input (no copy); the
// caller has checked that they are there.
func (r *reader) raw(n int) []byte {
	b := r.data[r.off : r.off+n : r.off+n]
	r.off += n
	return b
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

// maxList caps the entries of the small lists and maps inside a snapshot
// (layers, point counts, blocks, parameters): the problems have a handful.
const maxList = 64

// ints reads an array of at most maxList integers into dst's storage.
func (r *reader) ints(field string, dst []int) ([]int, error) {
	n, err := r.header(false)
	if err != nil {
		return dst, malformed("%s: %v", field, err)
	}
	if n > maxList {
		return dst, malformed("%s: %d entries, at most %d", field, n, maxList)
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

// skip skips one value of any type, iteratively (no recursion, so deep
// nesting costs nothing), checking every declared length.
func (r *reader) skip() error {
	for pending := 1; pending > 0; pending-- {
		if pending > r.left() {
			return malformed("skipping an unknown field: %d values declared, %d bytes left", pending, r.left())
		}
		c, err := r.byte()
		if err != nil {
			return malformed("skipping an unknown field: %v", err)
		}
		n, items := 0, 0 // bytes to skip, values to add
		switch {
		case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		case c >= 0x80 && c <= 0x8f:
			items = 2 * int(c&0x0f)
		case c >= 0x90 && c <= 0x9f:
			items = int(c & 0x0f)
		case c >= 0xa0 && c <= 0xbf:
			n = int(c & 0x1f)
		case c == 0xc4 || c == 0xd9:
			n, err = r.length(1, 1)
		case c == 0xc5 || c == 0xda:
			n, err = r.length(2, 1)
		case c == 0xc6 || c == 0xdb:
			n, err = r.length(4, 1)
		case c == 0xc7:
			n, err = r.length(1, 1)
			n++
		case c == 0xc8:
			n, err = r.length(2, 1)
			n++
		case c == 0xc9:
			n, err = r.length(4, 1)
			n++
		case c == 0xca:
			n = 4
		case c == 0xcb:
			n = 8
		case c >= 0xcc && c <= 0xcf:
			n = 1 << (c - 0xcc)
		case c >= 0xd0 && c <= 0xd3:
			n = 1 << (c - 0xd0)
		case c >= 0xd4 && c <= 0xd8:
			n = 1 + 1<<(c-0xd4)
		case c == 0xdc:
			items, err = r.length(2, 1)
		case c == 0xdd:
			items, err = r.length(4, 1)
		case c == 0xde:
			items, err = r.length(2, 2)
			items *= 2
		case c == 0xdf:
			items, err = r.length(4, 2)
			items *= 2
		default:
			return malformed("skipping an unknown field: code 0x%02x", c)
		}
		if err != nil {
			return malformed("skipping an unknown field: %v", err)
		}
		if n > r.left() {
			return malformed("skipping an unknown field: %d bytes declared, %d left", n, r.left())
		}
		r.off += n
		pending += items
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
