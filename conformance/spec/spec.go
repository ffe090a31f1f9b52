// Package spec is the registry of Phase's numbered requirements, read from
// the specification itself: SPEC.md, docs/spec-wire.md and docs/spec-api.md;
// and the published material the suite checks with (test vectors, the
// hand-written test modules of examples/wat).
//
// The three files are embedded as copies that `go generate` makes from the
// repository's own (and a test refuses to let drift), so a plasmsim binary
// carries the exact text it checks against. Nothing is copied by hand: a
// requirement is a list item that starts with its bold ID, and its level is
// the strongest RFC 2119 keyword of its text.
package spec

//go:generate go run ./internal/sync

import (
	"bufio"
	"bytes"
	"embed"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Level is a requirement's strength.
type Level string

const (
	Must   Level = "MUST"   // MUST, MUST NOT, REQUIRED, SHALL
	Should Level = "SHOULD" // SHOULD, SHOULD NOT, RECOMMENDED
	May    Level = "MAY"    // MAY, OPTIONAL
)

// Requirement is one numbered statement of the specification.
type Requirement struct {
	ID      string // e.g. "JOB-8"
	Level   Level
	Party   string // "node", "client" or "" (both, or the format itself)
	Text    string // the statement, as written (markdown)
	File    string // SPEC.md, docs/spec-wire.md or docs/spec-api.md
	Line    int
	Section string // the heading it stands under
}

// Files are the specification files, relative to the repository root.
var Files = []string{"SPEC.md", "docs/spec-wire.md", "docs/spec-api.md"}

// Vectors are the published test vectors and test modules, relative to the
// repository root; they are embedded beside the specification.
var Vectors = []string{"node/receipt/testdata/vectors.json", "node/wire/testdata/frames.json",
	"examples/wat/tiny.wasm", "examples/wat/exit7.wasm", "examples/wat/trap.wasm", "examples/wat/loop.wasm",
	"examples/wat/grow.wasm", "examples/wat/bigmem.wasm", "examples/wat/flood.wasm", "examples/wat/slow.wasm",
	"examples/wat/echo.wasm", "examples/wat/probe.wasm", "examples/wat/mem8.wasm"}

// File returns one embedded file (a specification file or vector file) by
// its repository path.
func File(name string) ([]byte, error) {
	b, err := embedded.ReadFile("files/" + strings.ReplaceAll(name, "/", "_"))
	if err != nil {
		return nil, fmt.Errorf("spec: embedded %s: %w", name, err)
	}
	return b, nil
}

//go:embed files
var embedded embed.FS

// Embedded returns the specification files as this binary carries them.
func Embedded() (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, f := range Files {
		b, err := File(f)
		if err != nil {
			return nil, err
		}
		out[f] = b
	}
	return out, nil
}

// Registry is every requirement, in document order, by ID.
type Registry struct {
	list []Requirement
	byID map[string]int
}

// Load parses the embedded specification.
func Load() (*Registry, error) {
	files, err := Embedded()
	if err != nil {
		return nil, err
	}
	return Parse(files)
}

var (
	itemRE     = regexp.MustCompile(`^(?:- |[0-9]+\. )\*\*([A-Z]+-[0-9]+)((?: [A-Z]+(?: NOT)?)?)\*\*\s*(.*)$`)
	keywordRE  = regexp.MustCompile(`\b(MUST|SHALL|REQUIRED|SHOULD|RECOMMENDED|MAY|OPTIONAL)\b`)
	partyRE    = regexp.MustCompile(`^\((node|client)[^)]*\)`)
	idRE       = regexp.MustCompile(`^[A-Z]+-[0-9]+$`)
	listItemRE = regexp.MustCompile(`^(?:- |[0-9]+\. )`)
)

// Parse reads requirements from the given files (name → content). An ID
// defined twice, or a requirement without an RFC 2119 keyword, is an error:
// the conformance suite must know how strong each one is.
func Parse(files map[string][]byte) (*Registry, error) {
	r := &Registry{byID: map[string]int{}}
	var errs []string
	for _, name := range Files {
		data, ok := files[name]
		if !ok {
			return nil, fmt.Errorf("spec: %s missing", name)
		}
		section := ""
		var cur *Requirement
		flush := func() {
			if cur == nil {
				return
			}
			cur.Text = strings.TrimSpace(cur.Text)
			if lvl, ok := levelOf(cur.Text); ok {
				cur.Level = lvl
			}
			if cur.Level == "" {
				errs = append(errs, fmt.Sprintf("%s:%d: %s has no MUST, SHOULD or MAY", name, cur.Line, cur.ID))
			}
			if i, dup := r.byID[cur.ID]; dup {
				errs = append(errs, fmt.Sprintf("%s:%d: %s is defined again (first at %s:%d)", name, cur.Line, cur.ID, r.list[i].File, r.list[i].Line))
			} else {
				r.byID[cur.ID] = len(r.list)
				r.list = append(r.list, *cur)
			}
			cur = nil
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for line := 1; sc.Scan(); line++ {
			text := sc.Text()
			switch {
			case strings.HasPrefix(text, "#"):
				flush()
				section = strings.TrimSpace(strings.TrimLeft(text, "#"))
			case itemRE.MatchString(text):
				flush()
				m := itemRE.FindStringSubmatch(text)
				cur = &Requirement{ID: m[1], File: name, Line: line, Section: section, Text: m[3]}
				if kw := strings.TrimSpace(m[2]); kw != "" {
					cur.Level = levelWord(kw)
					cur.Text = kw + " " + cur.Text
				}
				if p := partyRE.FindStringSubmatch(m[3]); p != nil {
					cur.Party = p[1]
				}
			case cur != nil && (strings.TrimSpace(text) == "" || listItemRE.MatchString(text)):
				flush()
			case cur != nil:
				cur.Text += " " + strings.TrimSpace(text)
			}
		}
		flush()
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("spec: %s", strings.Join(errs, "; "))
	}
	return r, nil
}

// levelOf is the strongest keyword of a statement.
func levelOf(text string) (Level, bool) {
	best := Level("")
	for _, kw := range keywordRE.FindAllString(text, -1) {
		switch l := levelWord(kw); {
		case l == Must:
			return Must, true
		case l == Should:
			best = Should
		case l == May && best == "":
			best = May
		}
	}
	return best, best != ""
}

func levelWord(kw string) Level {
	switch strings.Fields(kw)[0] {
	case "MUST", "SHALL", "REQUIRED":
		return Must
	case "SHOULD", "RECOMMENDED":
		return Should
	}
	return May
}

// All returns every requirement in document order.
func (r *Registry) All() []Requirement { return slices.Clone(r.list) }

// Get returns the requirement with this ID.
func (r *Registry) Get(id string) (Requirement, bool) {
	i, ok := r.byID[id]
	if !ok {
		return Requirement{}, false
	}
	return r.list[i], true
}

// IsID reports whether s has the form of a requirement ID.
func IsID(s string) bool { return idRE.MatchString(s) }

// IDs finds the requirement IDs a test or case name carries: every
// AREA-n or AREA_n token ("TestJOB8_HashMismatch", "JOB-8 …").
func IDs(name string) []string {
	var out []string
	for _, m := range nameIDRE.FindAllStringSubmatch(name, -1) {
		id := m[1] + "-" + m[2]
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

var nameIDRE = regexp.MustCompile(`(?:^|[^A-Za-z]|Test|Fuzz|Benchmark)(ID|MAN|RCPT|LEG|DHT|CAP|CAPS|EXEC|WIRE|JOB|API)[-_]?([0-9]+)`)

// Less orders IDs by area, then number.
func Less(a, b string) bool {
	aa, an, _ := strings.Cut(a, "-")
	ba, bn, _ := strings.Cut(b, "-")
	if aa != ba {
		return aa < ba
	}
	x, _ := strconv.Atoi(an)
	y, _ := strconv.Atoi(bn)
	return x < y
}
