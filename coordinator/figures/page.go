package figures

import (
	"bufio"
	"errors"
	"fmt"
	"image"
	"image/png"
	"os"

	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// DefaultDPI is the resolution used when Size.DPI is zero. Text and line
// widths are set in points (1/72 inch), so the DPI fixes how large they are
// in pixels: at 150 dpi a 9-point tick label is about 19 pixels tall.
const DefaultDPI = 150

// Size limits: below minPixels there is no room for axes and labels, above
// maxPixels a mistyped size would allocate gigabytes.
const (
	minPixels = 64
	maxPixels = 16384
)

// ErrNoData is returned (wrapped) when a figure has no finite value to show,
// for example when every value is NaN, or no value is positive on a log axis.
var ErrNoData = errors.New("no finite data to plot")

// Size is the size of an output PNG in pixels, and its resolution. Zero
// fields take the defaults of the figure kind and DefaultDPI. The written
// image is exactly Width×Height pixels.
type Size struct {
	Width, Height int // pixels
	DPI           int // dots per inch; larger means larger text relative to the image
}

// resolve fills in defaults and checks the size.
func (s Size) resolve(defWidth, defHeight int) (Size, error) {
	if s.Width < 0 || s.Height < 0 || s.DPI < 0 {
		return s, fmt.Errorf("negative size %dx%d px at %d dpi", s.Width, s.Height, s.DPI)
	}
	if s.Width == 0 {
		s.Width = defWidth
	}
	if s.Height == 0 {
		s.Height = defHeight
	}
	if s.DPI == 0 {
		s.DPI = DefaultDPI
	}
	if s.Width < minPixels || s.Height < minPixels || s.Width > maxPixels || s.Height > maxPixels {
		return s, fmt.Errorf("size %dx%d px outside [%d, %d]", s.Width, s.Height, minPixels, maxPixels)
	}
	return s, nil
}

// writePNG paints a figure of size s and writes it to path as PNG. A partly
// written file is removed on error.
func writePNG(path string, s Size, paint func(c draw.Canvas)) (err error) {
	img := image.NewRGBA(image.Rect(0, 0, s.Width, s.Height))
	cv := vgimg.NewWith(vgimg.UseImage(img), vgimg.UseDPI(s.DPI))
	if err := safePaint(paint, draw.New(cv)); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	w := bufio.NewWriter(f)
	if err := png.Encode(w, cv.Image()); err != nil {
		return fmt.Errorf("encode png: %w", err)
	}
	return w.Flush()
}

// safePaint runs paint and turns a panic into an error: gonum/plot reports
// some invalid states (such as a non-positive value on a log axis) by
// panicking, and a figure is not worth crashing a study run for. Inputs are
// validated before painting, so this is a last line of defence.
func safePaint(paint func(c draw.Canvas), c draw.Canvas) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("draw: %v", r)
		}
	}()
	paint(c)
	return nil
}

// pixels converts a length on the canvas to whole device pixels at dpi.
func pixels(l vg.Length, dpi int) int {
	return int(l.Dots(float64(dpi)) + 0.5)
}
