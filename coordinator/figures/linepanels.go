package figures

import (
	"fmt"
	"image/color"

	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// LinePanel is one panel of LinePanels: what a LinePlot would draw alone.
type LinePanel struct {
	Title, XLabel, YLabel string
	Series                []Series
	References            []Reference
}

// LinePanelsOptions configures LinePanels.
type LinePanelsOptions struct {
	Size              // default 420 px per column, 360 per row, plus the title
	Title      string // figure title above the panels
	Cols       int    // panels per row; 0: one row up to three panels, then about square
	LogX, LogY bool   // for every panel
}

// LinePanels writes a PNG of several line plots in a grid under one title,
// each with its own axes and legend: spectra of several networks side by
// side, say. Every panel is checked as LinePlot checks its series; a panel
// with nothing to draw is an error naming it.
func LinePanels(path string, panels []LinePanel, opt LinePanelsOptions) error {
	if len(panels) == 0 {
		return fmt.Errorf("figures: line panels %q: %w", path, ErrNoData)
	}
	cols := layout(len(panels), opt.Cols)
	rows := (len(panels) + cols - 1) / cols
	sz, err := opt.Size.resolve(420*cols, 360*rows+titleHeight(opt.Title))
	if err != nil {
		return fmt.Errorf("figures: line panels %q: %w", path, err)
	}
	charts := make([]*chart, len(panels))
	for k, pn := range panels {
		ch, err := buildLines(pn.Series, pn.References, axes{pn.Title, pn.XLabel, pn.YLabel, opt.LogX, opt.LogY})
		if err != nil {
			return fmt.Errorf("figures: line panels %q: panel %d %q: %w", path, k, pn.Title, err)
		}
		charts[k] = ch
	}
	paint := func(c draw.Canvas) {
		if opt.Title != "" {
			sty := text.Style{
				Color:   color.Black,
				Font:    sans(suptitle),
				XAlign:  draw.XCenter,
				YAlign:  draw.YTop,
				Handler: newRichText(),
			}
			const pad vg.Length = 5
			c.FillText(sty, vg.Point{X: c.Center().X, Y: c.Max.Y - pad}, opt.Title)
			c.Max.Y -= sty.Height(opt.Title) + 2*pad
		}
		tiles := draw.Tiles{
			Rows: rows, Cols: cols,
			PadTop: 4, PadBottom: 4, PadLeft: 4, PadRight: 6,
			PadX: 14, PadY: 12,
		}
		for k, ch := range charts {
			ch.draw(tiles.At(c, k%cols, k/cols))
		}
	}
	if err := writePNG(path, sz, paint); err != nil {
		return fmt.Errorf("figures: write line panels %q: %w", path, err)
	}
	return nil
}
