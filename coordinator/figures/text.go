package figures

import (
	"math"
	"strings"

	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
)

// richText is the text.Handler of every figure: plain text in which runs
// of Unicode superscripts (⁰…⁹ ⁻ ⁺ ⁿ), Unicode subscript digits (₀…₉), and
// the markup ^{…} and _{…} are drawn as smaller raised or lowered
// characters. The Liberation fonts bundled with gonum/plot lack ⁰, ⁹ and ⁻,
// so "10⁻³" would otherwise lose its minus sign; with this handler,
// "O(N⁻¹)", "O(N^{-1})" and "λ_{D}" all render.
type richText struct{ text.Plain }

func newRichText() richText { return richText{text.Plain{Fonts: font.DefaultCache}} }

// Script geometry as fractions of the font size.
const (
	scriptScale = 0.7
	supRaise    = 0.38
	subDrop     = 0.14
)

// run is a piece of a line drawn at one size and offset.
type run struct {
	s     string
	shift int // +1 superscript, −1 subscript, 0 normal
}

// runs splits a line into normal, superscript and subscript pieces.
func runs(line string) []run {
	var out []run
	var b strings.Builder
	shift := 0
	flush := func() {
		if b.Len() > 0 {
			out = append(out, run{b.String(), shift})
			b.Reset()
		}
	}
	rs := []rune(line)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		if (r == '^' || r == '_') && i+1 < len(rs) && rs[i+1] == '{' {
			if end := indexRune(rs[i+2:], '}'); end >= 0 {
				flush()
				s := 1
				if r == '_' {
					s = -1
				}
				out = append(out, run{strings.ReplaceAll(string(rs[i+2:i+2+end]), "-", "−"), s})
				i += 2 + end
				continue
			}
		}
		s, plain := script(r)
		if s != shift {
			flush()
			shift = s
		}
		b.WriteRune(plain)
	}
	flush()
	return out
}

func indexRune(rs []rune, r rune) int {
	for i, x := range rs {
		if x == r {
			return i
		}
	}
	return -1
}

// script maps a Unicode super- or subscript character to its shift and
// ordinary character.
func script(r rune) (shift int, plain rune) {
	switch {
	case r == '¹':
		return 1, '1'
	case r == '²':
		return 1, '2'
	case r == '³':
		return 1, '3'
	case r == '⁰' || (r >= '⁴' && r <= '⁹'):
		return 1, '0' + (r - '⁰')
	case r == '⁻':
		return 1, '−'
	case r == '⁺':
		return 1, '+'
	case r == 'ⁿ':
		return 1, 'n'
	case r >= '₀' && r <= '₉':
		return -1, '0' + (r - '₀')
	}
	return 0, r
}

func scriptFont(f font.Font) font.Font {
	f.Size = vg.Length(math.Max(1, float64(f.Size)*scriptScale))
	return f
}

// Box implements text.Handler.
func (h richText) Box(txt string, fnt font.Font) (width, height, depth vg.Length) {
	face := h.Fonts.Lookup(fnt, fnt.Size)
	small := h.Fonts.Lookup(scriptFont(fnt), scriptFont(fnt).Size)
	ext, sext := face.Extents(), small.Extents()
	height, depth = ext.Ascent, ext.Descent
	for _, r := range runs(txt) {
		switch r.shift {
		case 0:
			width += face.Width(r.s)
		case 1:
			width += small.Width(r.s)
			height = max(height, supRaise*fnt.Size+sext.Ascent)
		case -1:
			width += small.Width(r.s)
			depth = max(depth, subDrop*fnt.Size+sext.Descent)
		}
	}
	return width, height, depth
}

// Draw implements text.Handler, laying out lines as text.Plain does.
func (h richText) Draw(c vg.Canvas, txt string, sty text.Style, pt vg.Point) {
	txt = strings.TrimRight(txt, "\n")
	if txt == "" {
		return
	}
	face := h.Fonts.Lookup(sty.Font, sty.Font.Size)
	small := h.Fonts.Lookup(scriptFont(sty.Font), scriptFont(sty.Font).Size)
	c.SetColor(sty.Color)
	if sty.Rotation != 0 {
		c.Push()
		defer c.Pop()
		c.Rotate(sty.Rotation)
	}
	sin64, cos64 := math.Sincos(sty.Rotation)
	sin, cos := vg.Length(sin64), vg.Length(cos64)
	pt.X, pt.Y = pt.Y*sin+pt.X*cos, pt.Y*cos-pt.X*sin

	lines := h.Lines(txt)
	pt.Y += sty.Height(txt)*vg.Length(sty.YAlign) - face.Extents().Ascent
	for i, line := range lines {
		w, _, _ := h.Box(line, sty.Font)
		p := pt.Add(vg.Point{X: vg.Length(sty.XAlign) * w, Y: vg.Length(len(lines)-i) * sty.Font.Size})
		for _, r := range runs(line) {
			switch r.shift {
			case 0:
				c.FillString(face, p, r.s)
				p.X += face.Width(r.s)
			case 1:
				c.FillString(small, p.Add(vg.Point{Y: supRaise * sty.Font.Size}), r.s)
				p.X += small.Width(r.s)
			case -1:
				c.FillString(small, p.Add(vg.Point{Y: -subDrop * sty.Font.Size}), r.s)
				p.X += small.Width(r.s)
			}
		}
	}
}
