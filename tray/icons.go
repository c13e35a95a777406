package tray

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math"
)

// iconSize is the edge of the generated tray icons in pixels; hosts scale
// them to their panel.
const iconSize = 32

// icons holds a PNG per iconKind, drawn at init.
var icons = func() [numIcons][]byte {
	var out [numIcons][]byte
	for k := range numIcons {
		out[k] = drawIcon(k, iconSize)
	}
	return out
}()

// iconPNG returns the PNG of an icon state.
func iconPNG(k iconKind) []byte { return icons[k] }

// Icon colours: a coloured disc with a white glyph per state.
var iconColors = [numIcons]color.RGBA{
	iconUpToDate:        {0x2e, 0x7d, 0x32, 0xff},
	iconUpdatesPending:  {0x15, 0x65, 0xc0, 0xff},
	iconRestartRequired: {0xef, 0x6c, 0x00, 0xff},
	iconDeadlineNear:    {0xc6, 0x28, 0x28, 0xff},
	iconDisconnected:    {0x75, 0x75, 0x75, 0xff},
}

type seg struct{ x0, y0, x1, y1 float64 }

// glyphs are drawn in unit coordinates: x and y in [-1, 1], y down.
var glyphs = [numIcons][]seg{
	iconUpToDate:        {{-0.45, 0.02, -0.12, 0.35}, {-0.12, 0.35, 0.48, -0.3}},           // check mark
	iconUpdatesPending:  {{0, -0.5, 0, 0.38}, {-0.35, 0.05, 0, 0.4}, {0.35, 0.05, 0, 0.4}}, // down arrow
	iconDeadlineNear:    {{0, -0.52, 0, 0.1}, {0, 0.4, 0, 0.4}},                            // exclamation mark
	iconDisconnected:    {{-0.38, -0.38, 0.38, 0.38}, {0.38, -0.38, -0.38, 0.38}},          // cross
	iconRestartRequired: {{0.2, -0.62, 0.42, -0.42}, {0.42, -0.42, 0.14, -0.3}},            // arrow head of the ring below
}

// drawIcon renders one state's icon as a PNG, antialiased by 4x4
// supersampling.
func drawIcon(k iconKind, size int) []byte {
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	base := iconColors[k]
	const ss = 4
	for py := range size {
		for px := range size {
			var disc, glyph int
			for sy := range ss {
				for sx := range ss {
					x := (float64(px)+(float64(sx)+0.5)/ss)/float64(size)*2 - 1
					y := (float64(py)+(float64(sy)+0.5)/ss)/float64(size)*2 - 1
					if x*x+y*y <= 0.94*0.94 {
						disc++
						if inGlyph(k, x, y) {
							glyph++
						}
					}
				}
			}
			if disc == 0 {
				continue
			}
			// Blend white glyph over the base colour, alpha from disc coverage.
			g := float64(glyph) / float64(disc)
			mix := func(c uint8) uint8 { return uint8(math.Round(float64(c)*(1-g) + 255*g)) }
			img.SetNRGBA(px, py, color.NRGBA{mix(base.R), mix(base.G), mix(base.B), uint8(disc * 255 / (ss * ss))})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		panic("encode tray icon: " + err.Error()) // an in-memory NRGBA always encodes
	}
	return buf.Bytes()
}

func inGlyph(k iconKind, x, y float64) bool {
	const half = 0.09 // half the stroke width
	if k == iconRestartRequired {
		// A ring open at the top right, the arrow head closes it.
		r := math.Hypot(x, y)
		a := math.Atan2(y, x) // -pi..pi, y down: top right is around -pi/4
		if math.Abs(r-0.5) <= half && (a > -0.35 || a < -1.5) {
			return true
		}
	}
	if k == iconDeadlineNear && math.Hypot(x, y-0.4) <= 0.12 {
		return true
	}
	for _, s := range glyphs[k] {
		if distToSeg(x, y, s) <= half {
			return true
		}
	}
	return false
}

func distToSeg(x, y float64, s seg) float64 {
	dx, dy := s.x1-s.x0, s.y1-s.y0
	l2 := dx*dx + dy*dy
	t := 0.0
	if l2 > 0 {
		t = math.Max(0, math.Min(1, ((x-s.x0)*dx+(y-s.y0)*dy)/l2))
	}
	return math.Hypot(x-(s.x0+t*dx), y-(s.y0+t*dy))
}
