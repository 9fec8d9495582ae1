package figures

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
)

// Figures are independent: several may be drawn at once (run with -race).
func TestConcurrent(t *testing.T) {
	dir := t.TempDir()
	g, truth, _, _ := waveGrid(31, 31)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for k := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := filepath.Join(dir, fmt.Sprintf("f%d.png", k))
			if k%2 == 0 {
				errs[k] = LinePlot(path, []Series{{Name: "u", X: []float64{1, 2, 3}, Y: []float64{1, 4, 9}}},
					LineOptions{Size: Size{Width: 300, Height: 200}, LogY: true})
			} else {
				errs[k] = FieldMaps(path, []FieldPanel{{Title: "u", Grid: g, Z: truth, Contours: 3}},
					FieldOptions{Size: Size{Width: 300, Height: 260}})
			}
		}()
	}
	wg.Wait()
	for k, err := range errs {
		if err != nil {
			t.Errorf("figure %d: %v", k, err)
		}
	}
}
