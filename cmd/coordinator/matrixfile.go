package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// writeMatrix writes a rows×cols row-major matrix: NumPy .npy (little-endian
// float64, C order) when the name ends in .npy, otherwise CSV with every
// value in its shortest exact form.
func writeMatrix(path string, m []float64, rows, cols int) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write matrix: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if strings.EqualFold(filepath.Ext(path), ".npy") {
		err = writeNPY(w, m, rows, cols)
	} else {
		buf := make([]byte, 0, 32)
		for i := 0; i < rows && err == nil; i++ {
			for j := 0; j < cols; j++ {
				buf = buf[:0]
				if j > 0 {
					buf = append(buf, ',')
				}
				buf = strconv.AppendFloat(buf, m[i*cols+j], 'g', -1, 64)
				w.Write(buf)
			}
			_, err = w.WriteString("\n")
		}
	}
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write matrix %s: %w", path, err)
	}
	return nil
}

// writeNPY writes NumPy format version 1.0.
func writeNPY(w *bufio.Writer, m []float64, rows, cols int) error {
	header := fmt.Sprintf("{'descr': '<f8', 'fortran_order': False, 'shape': (%d, %d), }", rows, cols)
	// Magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
	pad := 64 - (10+len(header)+1)%64
	header += strings.Repeat(" ", pad%64) + "\n"
	w.WriteString("\x93NUMPY\x01\x00")
	var l [2]byte
	binary.LittleEndian.PutUint16(l[:], uint16(len(header)))
	w.Write(l[:])
	w.WriteString(header)
	var b [8]byte
	for _, v := range m[:rows*cols] {
		binary.LittleEndian.PutUint64(b[:], math.Float64bits(v))
		if _, err := w.Write(b[:]); err != nil {
			return err
		}
	}
	return nil
}

func jsonUnmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
