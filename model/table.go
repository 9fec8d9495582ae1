package model

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
)

// MaxTableBytes bounds a CSV file of points or reference data.
const MaxTableBytes = 256 << 20

// Table is numeric CSV data with a header: Rows×len(Header) values,
// row-major.
type Table struct {
	Header []string
	Data   []float64
}

// Rows is the number of data rows.
func (t *Table) Rows() int {
	if len(t.Header) == 0 {
		return 0
	}
	return len(t.Data) / len(t.Header)
}

// ReadTable reads a CSV file (see ParseTable), at most MaxTableBytes.
func ReadTable(path string) (*Table, error) {
	text, err := readBounded(path, MaxTableBytes)
	if err != nil {
		return nil, err
	}
	t, err := ParseTable(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// ReadTableText reads a CSV file's text, at most MaxTableBytes (ParseTable
// reads it; NewSetup checks reference data against its problem).
func ReadTableText(path string) (string, error) { return readBounded(path, MaxTableBytes) }

// readBounded reads a whole file of at most limit bytes.
// A FIFO or a device is refused without blocking (ReadFileLimit).
func readBounded(path string, limit int64) (string, error) {
	data, err := ReadFileLimit(path, limit)
	return string(data), err
}

// ParseTable parses CSV text: a header row of column names, then rows of
// finite numbers, as many as the header names. Lines starting with '#'
// are comments. Errors say the line and the column.
func ParseTable(text string) (*Table, error) {
	r := csv.NewReader(strings.NewReader(text))
	r.Comment = '#'
	r.TrimLeadingSpace = true
	r.ReuseRecord = true
	head, err := r.Read()
	if err == io.EOF {
		return nil, errors.New("empty: the first line must name the columns")
	}
	if err != nil {
		return nil, csvError(err)
	}
	t := &Table{}
	seen := map[string]bool{}
	for _, h := range head {
		h = strings.TrimSpace(h)
		if h == "" {
			return nil, errors.New("line 1: an empty column name")
		}
		if _, err := strconv.ParseFloat(h, 64); err == nil {
			return nil, fmt.Errorf("line 1: column name %q is a number: the first line must name the columns", h)
		}
		if seen[h] {
			return nil, fmt.Errorf("line 1: column %q named twice", h)
		}
		seen[h] = true
		t.Header = append(t.Header, h)
	}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, csvError(err)
		}
		line, _ := r.FieldPos(0)
		if len(rec) != len(t.Header) {
			return nil, fmt.Errorf("line %d: %d values for the %d columns %v", line, len(rec), len(t.Header), t.Header)
		}
		for j, s := range rec {
			v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("line %d, column %s: %q is not a finite number", line, t.Header[j], s)
			}
			t.Data = append(t.Data, v)
		}
	}
	if t.Rows() == 0 {
		return nil, errors.New("no data rows after the header")
	}
	return t, nil
}

func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		if errors.Is(pe.Err, csv.ErrFieldCount) {
			return fmt.Errorf("line %d: a different number of values than the header has columns", pe.Line)
		}
		return fmt.Errorf("line %d, column %d: %v", pe.Line, pe.Column, pe.Err)
	}
	return err
}

// Columns returns the indices of the named columns, or an error that names
// the missing ones and the columns the table has.
func (t *Table) Columns(want []string, what string) ([]int, error) {
	idx := make([]int, len(want))
	var missing []string
	for i, w := range want {
		idx[i] = indexOf(t.Header, w)
		if idx[i] < 0 {
			missing = append(missing, w)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("no column %s (%s needs columns %s; the header has %s)", strings.Join(missing, ", "), what, strings.Join(want, ", "), strings.Join(t.Header, ", "))
	}
	return idx, nil
}

// Select returns the named columns of every row, row-major.
func (t *Table) Select(idx []int) []float64 {
	n, w := t.Rows(), len(t.Header)
	out := make([]float64, 0, n*len(idx))
	for i := 0; i < n; i++ {
		for _, j := range idx {
			out = append(out, t.Data[i*w+j])
		}
	}
	return out
}

func indexOf(s []string, x string) int {
	for i, v := range s {
		if v == x {
			return i
		}
	}
	return -1
}

// parseNumber reads a number as TOML or a face's value writes it, also pi
// and simple multiples such as -pi or 2*pi.
func parseNumber(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if v, err := strconv.ParseFloat(s, 64); err == nil {
		return v, nil
	}
	neg := strings.HasPrefix(s, "-")
	t := strings.TrimPrefix(s, "-")
	f := 1.0
	if a, b, ok := strings.Cut(t, "*"); ok && strings.TrimSpace(b) == "pi" {
		v, err := strconv.ParseFloat(strings.TrimSpace(a), 64)
		if err != nil {
			return 0, err
		}
		f, t = v, "pi"
	}
	if strings.TrimSpace(t) != "pi" {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	v := f * math.Pi
	if neg {
		v = -v
	}
	return v, nil
}

func sortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}
