package protocol

import (
	"fmt"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// Float vectors as one bin of little-endian bytes against msgpack's default
// encoding of []float64 (a float64 marker and 8 bytes per value, through
// reflection). Measured on this project's 2-core machine:
//
//	go test ./protocol -run '^$' -bench Floats
//
// see docs/speed.md for the numbers.
func BenchmarkFloats(b *testing.B) {
	for _, n := range []int{2000, 50000, 503001} {
		v := awkwardFloats(n)
		b.Run(fmt.Sprintf("bin/encode/%d", n), func(b *testing.B) {
			var w writer
			b.SetBytes(int64(8 * n))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				w.begin(1)
				w.floats("d", v)
			}
		})
		b.Run(fmt.Sprintf("msgpack/encode/%d", n), func(b *testing.B) {
			b.SetBytes(int64(8 * n))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := msgpack.Marshal(map[string]any{"d": v}); err != nil {
					b.Fatal(err)
				}
			}
		})
		var w writer
		w.begin(1)
		w.floats("d", v)
		bin := w.out(nil)
		def, _ := msgpack.Marshal(map[string][]float64{"d": v})
		b.Run(fmt.Sprintf("bin/decode/%d", n), func(b *testing.B) {
			var r reader
			dst := make([]float64, n)
			b.SetBytes(int64(8 * n))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				r.reset(bin)
				r.mapLen()
				r.key()
				dst, _ = r.floats("d", dst)
			}
		})
		b.Run(fmt.Sprintf("msgpack/decode/%d", n), func(b *testing.B) {
			b.SetBytes(int64(8 * n))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				var m map[string][]float64
				if err := msgpack.Unmarshal(def, &m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A result of 16 wave probes (n = 900) and a wave snapshot (p = 503,001).
func BenchmarkMessages(b *testing.B) {
	var c Codec
	res := &Result{Version: Version, Run: "run", Step: 7, Lo: 0, Hi: 16, Instance: "s", Token: 3, Width: 900, D: awkwardFloats(16 * 900)}
	data := c.MarshalResult(nil, res)
	buf := make([]byte, 0, len(data))
	b.Run("result/encode", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			buf = c.MarshalResult(buf[:0], res)
		}
	})
	b.Run("result/decode", func(b *testing.B) {
		var m Result
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			c.UnmarshalResult(data, &m)
		}
	})
	snap := sampleSnapshot()
	snap.Theta = awkwardFloats(503001)
	sdata := c.MarshalSnapshot(nil, snap)
	sbuf := make([]byte, 0, len(sdata))
	b.Run("snapshot/encode", func(b *testing.B) {
		b.SetBytes(int64(len(sdata)))
		for i := 0; i < b.N; i++ {
			sbuf = c.MarshalSnapshot(sbuf[:0], snap)
		}
	})
	b.Run("snapshot/decode", func(b *testing.B) {
		var m Snapshot
		b.SetBytes(int64(len(sdata)))
		for i := 0; i < b.N; i++ {
			c.UnmarshalSnapshot(sdata, &m)
		}
	})
}
