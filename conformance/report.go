package conformance

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"html/template"
	"io"
	"sort"
	"strings"

	"github.com/phase-protocol/plasm/conformance/spec"
)

// MutantKill is one mutant's row of the kill table.
type MutantKill struct {
	Name    string   `json:"name"`
	Breaks  []string `json:"breaks"` // the requirements it is built to break
	Killed  bool     `json:"killed"` // the suite failed, naming one of Breaks
	Failed  []string `json:"failed"` // the MUST requirements the suite failed on it
	Message string   `json:"message,omitempty"`
}

// Counts summarises requirement verdicts by level.
type Counts struct {
	Level                                                spec.Level
	Total, Pass, Fail, NA, Informational, NotImplemented int
}

// Summary counts the requirements by level and verdict.
func (r *Report) Summary() []Counts {
	by := map[spec.Level]*Counts{}
	for _, l := range []spec.Level{spec.Must, spec.Should, spec.May} {
		by[l] = &Counts{Level: l}
	}
	for _, q := range r.Requirements {
		c := by[q.Level]
		c.Total++
		switch q.Verdict {
		case Pass:
			c.Pass++
		case Fail:
			c.Fail++
		case NotApplicable:
			c.NA++
		case Informational:
			c.Informational++
		case NotImplemented:
			c.NotImplemented++
		}
	}
	return []Counts{*by[spec.Must], *by[spec.Should], *by[spec.May]}
}

// WriteJSON writes the whole report.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}

type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Time     float64     `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      float64       `xml:"time,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	Skipped   *junitSkipped `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

type junitSkipped struct {
	Message string `xml:"message,attr"`
}

// WriteJUnit writes JUnit XML: one suite per area (the case name's first
// part), one testcase per case, named with its requirement IDs.
func (r *Report) WriteJUnit(w io.Writer) error {
	suites := map[string]*junitSuite{}
	for _, c := range r.Cases {
		area, _, _ := strings.Cut(c.Name, "/")
		s := suites[area]
		if s == nil {
			s = &junitSuite{Name: "phase-conformance." + area}
			suites[area] = s
		}
		jc := junitCase{Name: c.Name + " [" + strings.Join(c.Reqs, " ") + "]", Classname: "phase." + area, Time: c.Duration.Seconds()}
		switch c.Verdict {
		case Fail:
			jc.Failure = &junitFailure{Message: c.Message, Text: transcriptText(c.Transcript)}
			s.Failures++
		case NotApplicable:
			jc.Skipped = &junitSkipped{Message: "not applicable: " + c.Message}
			s.Skipped++
		}
		s.Tests++
		s.Time += jc.Time
		s.Cases = append(s.Cases, jc)
	}
	out := junitSuites{}
	for _, s := range suites {
		out.Suites = append(out.Suites, *s)
	}
	sort.Slice(out.Suites, func(i, j int) bool { return out.Suites[i].Name < out.Suites[j].Name })
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func transcriptText(ls []Line) string {
	var b strings.Builder
	for _, l := range ls {
		fmt.Fprintf(&b, "%-4s %s\n", l.Dir, l.Text)
	}
	return b.String()
}

// WriteHTML writes one self-contained HTML file: the coverage summary, the
// mutant kill table, and per requirement its level, verdict and cases, with
// what was sent and what came back for every failure.
func (r *Report) WriteHTML(w io.Writer) error {
	byName := map[string]CaseResult{}
	for _, c := range r.Cases {
		byName[c.Name] = c
	}
	data := struct {
		R       *Report
		Summary []Counts
		Cases   map[string]CaseResult
	}{r, r.Summary(), byName}
	return htmlTmpl.Execute(w, data)
}

var htmlTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"join": strings.Join,
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Phase conformance: {{.R.Target}}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0;width:100%}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}
.pass{background:#e6f6e6}.fail{background:#fbe3e3}.not_applicable{background:#f2f2f2}
.informational{background:#fff4d6}.not_implemented{background:#fbe3e3}
pre{white-space:pre-wrap;font-size:12px;background:#fafafa;border:1px solid #eee;padding:6px;margin:4px 0}
details{margin:2px 0} .muted{color:#777}
</style></head><body>
<h1>Phase conformance</h1>
<p>Target: <b>{{.R.Target}}</b> · started {{.R.Started.Format "2006-01-02 15:04:05 MST"}} · {{.R.Duration}} · {{len .R.Cases}} cases</p>
<h2>Coverage</h2>
<table><tr><th>level</th><th>requirements</th><th>pass</th><th>fail</th><th>not applicable</th><th>informational</th><th>not implemented</th></tr>
{{range .Summary}}<tr><td>{{.Level}}</td><td>{{.Total}}</td><td>{{.Pass}}</td><td>{{.Fail}}</td><td>{{.NA}}</td><td>{{.Informational}}</td><td>{{.NotImplemented}}</td></tr>
{{end}}</table>
{{if .R.Mutants}}<h2>Mutants</h2>
<table><tr><th>mutant</th><th>breaks</th><th>killed</th><th>MUST requirements the suite failed</th></tr>
{{range .R.Mutants}}<tr class="{{if .Killed}}pass{{else}}fail{{end}}"><td>{{.Name}}</td><td>{{join .Breaks " "}}</td><td>{{if .Killed}}yes{{else}}NO{{end}}</td><td>{{join .Failed " "}} <span class="muted">{{.Message}}</span></td></tr>
{{end}}</table>{{end}}
<h2>Requirements</h2>
<table><tr><th>ID</th><th>level</th><th>verdict</th><th>requirement</th><th>cases</th></tr>
{{range .R.Requirements}}<tr class="{{.Verdict}}"><td>{{.ID}}</td><td>{{.Level}}</td><td>{{.Verdict}}</td>
<td><details><summary>{{.File}}</summary>{{.Text}}</details></td>
<td>{{range .Cases}}{{with index $.Cases .}}<div class="{{.Verdict}}"><b>{{.Verdict}}</b> {{.Name}}{{if .Message}}: {{.Message}}{{end}}
{{if .Transcript}}<details><summary>what was sent and what came back</summary><pre>{{range .Transcript}}{{.Dir}}  {{.Text}}
{{end}}</pre></details>{{end}}</div>{{end}}{{end}}</td></tr>
{{end}}</table>
</body></html>
`))

// Merge joins the reports of several sides of one run.
func Merge(reps ...*Report) *Report {
	out := &Report{Target: reps[0].Target, Started: reps[0].Started, Level: reps[0].Level}
	seen := map[string]int{}
	for _, r := range reps {
		out.Duration += r.Duration
		out.Cases = append(out.Cases, r.Cases...)
		out.Mutants = append(out.Mutants, r.Mutants...)
		for _, q := range r.Requirements {
			i, ok := seen[q.ID]
			if !ok {
				seen[q.ID] = len(out.Requirements)
				out.Requirements = append(out.Requirements, q)
				continue
			}
			merged := &out.Requirements[i]
			merged.Cases = append(merged.Cases, q.Cases...)
			merged.Verdict = worse(merged.Verdict, q.Verdict)
		}
	}
	sort.SliceStable(out.Requirements, func(i, j int) bool { return spec.Less(out.Requirements[i].ID, out.Requirements[j].ID) })
	return out
}

// worse orders verdicts: fail, informational, pass, not applicable, not
// implemented (a requirement some side checked is implemented).
func worse(a, b Verdict) Verdict {
	rank := map[Verdict]int{Fail: 5, Informational: 4, Pass: 3, NotApplicable: 2, NotImplemented: 1}
	if rank[b] > rank[a] {
		return b
	}
	return a
}
