package bench

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Row is one line of the result table.
type Row struct {
	Figure    string
	Value     string
	Reference string
	Ratio     string
	Target    string
	Met       string
}

// Report is the harness's result: the table and notes under it.
type Report struct {
	Rows  []Row
	Notes []string
}

// Markdown writes the table and the notes.
func (r *Report) Markdown(w io.Writer) {
	fmt.Fprintln(w, "| figure | value | reference | ratio | target | met? |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | --- | --- |")
	for _, x := range r.Rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", x.Figure, x.Value, x.Reference, x.Ratio, x.Target, x.Met)
	}
	if len(r.Notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range r.Notes {
			fmt.Fprintln(w, "- "+n)
		}
	}
}

func (r *Report) add(row Row) { r.Rows = append(r.Rows, row) }
func (r *Report) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// rate formats messages per second with a thousands separator.
func rate(v float64) string { return thousands(int64(v+0.5)) + "/s" }

func thousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func ratio(v, ref float64) string {
	if ref == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", v/ref)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func mbytes(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }

func met(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}
