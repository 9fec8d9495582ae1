package figures

import (
	"fmt"

	"gonum.org/v1/plot/vg/draw"
)

// LinePanel is one panel of LinePanels: the series and axes of a LinePlot.
type LinePanel struct {
	Series                []Series
	Title, XLabel, YLabel string
	LogX, LogY            bool
}

// LinePanels writes line plots side by side in one PNG (default 840 px
// wide per panel, 640 high): the same runs against two x axes, say steps
// and wall-clock time. Each panel places its own legend as LinePlot does.
func LinePanels(path string, panels []LinePanel, size Size) error {
	if len(panels) == 0 {
		return fmt.Errorf("figures: line panels %q: no panels", path)
	}
	sz, err := size.resolve(840*len(panels), 640)
	if err != nil {
		return fmt.Errorf("figures: line panels %q: %w", path, err)
	}
	charts := make([]*chart, len(panels))
	for k, pn := range panels {
		ch, err := buildLines(pn.Series, nil, axes{pn.Title, pn.XLabel, pn.YLabel, pn.LogX, pn.LogY})
		if err != nil {
			return fmt.Errorf("figures: line panels %q: panel %d %q: %w", path, k, pn.Title, err)
		}
		charts[k] = ch
	}
	paint := func(c draw.Canvas) {
		tiles := draw.Tiles{Rows: 1, Cols: len(charts), PadX: 20}
		for k, ch := range charts {
			ch.draw(tiles.At(c, k, 0))
		}
	}
	if err := writePNG(path, sz, paint); err != nil {
		return fmt.Errorf("figures: write line panels %q: %w", path, err)
	}
	return nil
}
