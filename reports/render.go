package reports

import (
	"bytes"
	"embed"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
	"time"
)

//go:embed templates/report.html.tmpl
var templates embed.FS

var htmlTemplate = template.Must(template.New("report.html.tmpl").Funcs(template.FuncMap{
	"upper": strings.ToUpper,
	"words": func(s string) string { return strings.ReplaceAll(s, "_", " ") },
	"join":  strings.Join,
	"time":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"yesno": yesNo,
	"cell":  htmlCell,
	"chart": chartSVG,
	"params": func(p map[string]any) string {
		b, _ := json.Marshal(p)
		return string(b)
	},
}).ParseFS(templates, "templates/report.html.tmpl"))

// HTML renders the report as one self-contained page: inline CSS and SVG,
// no scripts, and a content security policy that forbids loading anything.
func HTML(r *Report) ([]byte, error) {
	var buf bytes.Buffer
	if err := htmlTemplate.Execute(&buf, r); err != nil {
		return nil, fmt.Errorf("reports: html: %w", err)
	}
	return buf.Bytes(), nil
}

// cellText is how every format writes a cell.
func cellText(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	case int64:
		return strconv.FormatInt(t, 10)
	case int:
		return strconv.Itoa(t)
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	case json.Number:
		return t.String()
	}
	return fmt.Sprint(v)
}

func htmlCell(v any) template.HTML {
	s := template.HTMLEscapeString(cellText(v))
	switch v.(type) {
	case int64, int, float64, json.Number:
		return template.HTML(`<td class="num">` + s + `</td>`)
	}
	if isHexHash(s) {
		// A hash may break anywhere: whole, two of them (a changed
		// configuration hash) would push the table past the page.
		return template.HTML(`<td class="mono">` + s + `</td>`)
	}
	return template.HTML(`<td>` + s + `</td>`)
}

// isHexHash reports whether s is a hex digest of 128 bits or more.
func isHexHash(s string) bool {
	if len(s) < 32 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// CSV renders one table: a header row with the column names, then the
// rows, cells as in the JSON form.
func CSV(t *Table) ([]byte, error) {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	if err := w.Write(t.Columns); err != nil {
		return nil, err
	}
	for _, r := range t.Rows {
		rec := make([]string, len(r))
		for i, c := range r {
			rec[i] = cellText(c)
		}
		if err := w.Write(rec); err != nil {
			return nil, err
		}
	}
	w.Flush()
	return buf.Bytes(), w.Error()
}

// palette is colour-blind friendly and prints in greyscale distinguishably.
var palette = []string{"#1b6ca8", "#d95f02", "#7570b3", "#1b9e77", "#e7298a", "#66a61e", "#a6761d", "#666666"}

// statusColors keep run outcomes readable at a glance.
var statusColors = map[string]string{"success": "#1e6b34", "failure": "#b3261e", "error": "#b3261e", "running": "#8a5a00",
	"timeout": "#d95f02", "cancellation": "#7570b3", "skip": "#666666"}

// chartSVG draws a chart of a section's table as an inline, stacked bar
// chart: one bar per category, one colour per series, a legend and the
// total above each bar.
func chartSVG(s Section, c Chart) template.HTML {
	var t *Table
	for i := range s.Tables {
		if s.Tables[i].ID == c.Table {
			t = &s.Tables[i]
		}
	}
	if t == nil || len(t.Rows) == 0 {
		return template.HTML(`<figure><figcaption>` + template.HTMLEscapeString(c.Title) + `</figcaption><p class="empty">No data.</p></figure>`)
	}
	col := func(name string) int {
		for i, n := range t.Columns {
			if n == name {
				return i
			}
		}
		return -1
	}
	xi, si, vi := col(c.X), col(c.Series), col(c.Value)
	var cats, series []string
	vals := map[[2]string]float64{}
	seenC, seenS := map[string]bool{}, map[string]bool{}
	for _, r := range t.Rows {
		x, ser := cellText(r[xi]), ""
		if si >= 0 {
			ser = cellText(r[si])
		}
		v, _ := strconv.ParseFloat(cellText(r[vi]), 64)
		if !seenC[x] {
			seenC[x], cats = true, append(cats, x)
		}
		if !seenS[ser] {
			seenS[ser], series = true, append(series, ser)
		}
		vals[[2]string{x, ser}] += v
	}
	color := func(i int, name string) string {
		if col, ok := statusColors[name]; ok && c.Series == "status" {
			return col
		}
		return palette[i%len(palette)]
	}
	const w, h, left, top, bottom = 960.0, 220.0, 48.0, 22.0, 64.0
	plotH := h - top - bottom
	var max float64
	for _, x := range cats {
		var sum float64
		for _, ser := range series {
			sum += vals[[2]string{x, ser}]
		}
		max = math.Max(max, sum)
	}
	if max == 0 {
		max = 1
	}
	slot := (w - left - 10) / float64(len(cats))
	bar := math.Max(1, math.Min(48, slot*0.7))
	var b strings.Builder
	fmt.Fprintf(&b, `<figure id="chart-%s"><figcaption>%s</figcaption><svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 %.0f %.0f" width="100%%" aria-label="%s">`,
		template.HTMLEscapeString(c.ID), template.HTMLEscapeString(c.Title), w, h+float64(len(series)/6+1)*16, template.HTMLEscapeString(c.Title))
	fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#5b6475"/>`, left, top+plotH, w-10, top+plotH)
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10" text-anchor="end" fill="#5b6475">%s</text>`, left-4, top+4, cellText(max))
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10" text-anchor="end" fill="#5b6475">0</text>`, left-4, top+plotH)
	labelEvery := int(math.Ceil(float64(len(cats)) * 60 / (w - left)))
	for i, x := range cats {
		cx := left + slot*float64(i) + slot/2
		y := top + plotH
		var sum float64
		for j, ser := range series {
			v := vals[[2]string{x, ser}]
			if v == 0 {
				continue
			}
			bh := v / max * plotH
			y -= bh
			sum += v
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s</title></rect>`,
				cx-bar/2, y, bar, bh, color(j, ser), template.HTMLEscapeString(x), template.HTMLEscapeString(ser), cellText(v))
		}
		if slot >= 18 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10" text-anchor="middle">%s</text>`, cx, y-3, cellText(sum))
		}
		if labelEvery <= 1 || i%labelEvery == 0 {
			label := x
			if len(label) > 28 {
				label = "…" + label[len(label)-27:]
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="10" text-anchor="end" transform="rotate(-30 %.1f %.1f)">%s</text>`,
				cx, top+plotH+12, cx, top+plotH+12, template.HTMLEscapeString(label))
		}
	}
	for j, ser := range series {
		if ser == "" && len(series) == 1 {
			break
		}
		lx, ly := left+float64(j%6)*150, h+float64(j/6)*16
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="10" height="10" fill="%s"/><text x="%.1f" y="%.1f" font-size="11">%s</text>`,
			lx, ly-9, color(j, ser), lx+14, ly, template.HTMLEscapeString(dash(ser)))
	}
	b.WriteString(`</svg></figure>`)
	return template.HTML(b.String())
}
