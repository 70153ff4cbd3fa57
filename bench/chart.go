package bench

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// WritePNG draws the report as a grouped bar chart: per scenario, each
// target's throughput relative to the baseline.
func (rep *Report) WritePNG(path string) error {
	img := rep.chart()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

var palette = []color.RGBA{
	{0x1f, 0x77, 0xb4, 0xff}, // blue
	{0xd6, 0x27, 0x28, 0xff}, // red
	{0x2c, 0xa0, 0x2c, 0xff}, // green
	{0x7f, 0x7f, 0x7f, 0xff}, // grey
	{0xff, 0x7f, 0x0e, 0xff}, // orange
	{0x94, 0x67, 0xbd, 0xff}, // purple
}

func (rep *Report) chart() *image.RGBA {
	const (
		w, h                     = 1100, 560
		left, right, top, bottom = 70, 20, 70, 60
		scale                    = 2
	)
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	fill(img, img.Bounds(), color.RGBA{0xff, 0xff, 0xff, 0xff})
	black := color.RGBA{0, 0, 0, 0xff}
	grid := color.RGBA{0xdd, 0xdd, 0xdd, 0xff}

	maxRatio := 1.0
	for si := range rep.Scenarios {
		for ti := range rep.Targets {
			maxRatio = math.Max(maxRatio, rep.Ratio(si, ti))
		}
	}
	step := 0.5
	if maxRatio > 6 {
		step = 1
	}
	if maxRatio > 12 {
		step = 2
	}
	ymax := math.Ceil(maxRatio*1.08/step) * step
	plotH := h - top - bottom
	y := func(v float64) int { return h - bottom - int(v/ymax*float64(plotH)) }

	drawText(img, left, 12, scale, black, "THROUGHPUT RELATIVE TO "+strings.ToUpper(rep.Baseline)+" (OPS/S RATIO, HIGHER IS BETTER)")
	for v := 0.0; v <= ymax+1e-9; v += step {
		yy := y(v)
		hline(img, left, w-right, yy, grid)
		label := fmt.Sprintf("%.1f", v)
		drawText(img, left-8-textWidth(label, scale), yy-7, scale, black, label)
	}
	hline(img, left, w-right, y(1), color.RGBA{0x40, 0x40, 0x40, 0xff})
	vline(img, left, top, h-bottom, black)
	hline(img, left, w-right, h-bottom, black)

	// Legend.
	lx := left + 10
	for ti, name := range rep.Targets {
		c := palette[ti%len(palette)]
		fill(img, image.Rect(lx, 40, lx+14, 54), c)
		drawText(img, lx+20, 40, scale, black, name)
		lx += 20 + textWidth(name, scale) + 30
	}

	groups := len(rep.Scenarios)
	if groups == 0 {
		return img
	}
	gw := (w - left - right) / groups
	bars := len(rep.Targets)
	bw := (gw - 20) / max(bars, 1)
	for si, sc := range rep.Scenarios {
		gx := left + si*gw + 10
		for ti := range rep.Targets {
			x := rep.Ratio(si, ti)
			bx := gx + ti*bw
			if x <= 0 {
				drawText(img, bx+2, h-bottom-16, 1, black, "N/A")
				continue
			}
			fill(img, image.Rect(bx+1, y(x), bx+bw-1, h-bottom), palette[ti%len(palette)])
			label := fmt.Sprintf("%.2f", x)
			drawText(img, bx+(bw-textWidth(label, 1))/2, y(x)-10, 1, black, label)
		}
		name := strings.ToUpper(sc.Name)
		drawText(img, gx+(gw-20-textWidth(name, scale))/2, h-bottom+12, scale, black, name)
	}
	return img
}

func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	r = r.Intersect(img.Bounds())
	for yy := r.Min.Y; yy < r.Max.Y; yy++ {
		for xx := r.Min.X; xx < r.Max.X; xx++ {
			img.SetRGBA(xx, yy, c)
		}
	}
}

func hline(img *image.RGBA, x0, x1, y int, c color.RGBA) {
	fill(img, image.Rect(x0, y, x1, y+1), c)
}

func vline(img *image.RGBA, x, y0, y1 int, c color.RGBA) {
	fill(img, image.Rect(x, y0, x+1, y1), c)
}

func textWidth(s string, scale int) int { return len([]rune(s)) * 6 * scale }

// drawText writes s with its top-left corner at (x, y) in a 5x7 pixel
// font magnified scale times. Letters are drawn in upper case.
func drawText(img *image.RGBA, x, y, scale int, c color.RGBA, s string) {
	for _, r := range strings.ToUpper(s) {
		g, ok := glyphs[r]
		if !ok {
			g = glyphs['?']
		}
		for row, bits := range g {
			for col, b := range bits {
				if b != '#' {
					continue
				}
				fill(img, image.Rect(x+col*scale, y+row*scale, x+(col+1)*scale, y+(row+1)*scale), c)
			}
		}
		x += 6 * scale
	}
}

var glyphs = map[rune][7]string{
	' ': {".....", ".....", ".....", ".....", ".....", ".....", "....."},
	'0': {".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."},
	'1': {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."},
	'2': {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"},
	'3': {"####.", "....#", "....#", ".###.", "....#", "....#", "####."},
	'4': {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."},
	'5': {"#####", "#....", "####.", "....#", "....#", "#...#", ".###."},
	'6': {"..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."},
	'7': {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."},
	'8': {".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."},
	'9': {".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."},
	'A': {".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'B': {"####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."},
	'C': {".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."},
	'D': {"####.", "#...#", "#...#", "#...#", "#...#", "#...#", "####."},
	'E': {"#####", "#....", "#....", "####.", "#....", "#....", "#####"},
	'F': {"#####", "#....", "#....", "####.", "#....", "#....", "#...."},
	'G': {".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"},
	'H': {"#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'I': {".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."},
	'J': {"..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."},
	'K': {"#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"},
	'L': {"#....", "#....", "#....", "#....", "#....", "#....", "#####"},
	'M': {"#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"},
	'N': {"#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"},
	'O': {".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."},
	'P': {"####.", "#...#", "#...#", "####.", "#....", "#....", "#...."},
	'Q': {".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"},
	'R': {"####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"},
	'S': {".####", "#....", "#....", ".###.", "....#", "....#", "####."},
	'T': {"#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."},
	'U': {"#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."},
	'V': {"#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."},
	'W': {"#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."},
	'X': {"#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"},
	'Y': {"#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."},
	'Z': {"#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"},
	'.': {".....", ".....", ".....", ".....", ".....", ".##..", ".##.."},
	',': {".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."},
	'-': {".....", ".....", ".....", "#####", ".....", ".....", "....."},
	'=': {".....", ".....", "#####", ".....", "#####", ".....", "....."},
	':': {".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."},
	'/': {".....", "....#", "...#.", "..#..", ".#...", "#....", "....."},
	'(': {"...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."},
	')': {".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."},
	'%': {"##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##"},
	'?': {".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#.."},
}
