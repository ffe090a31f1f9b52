package spec

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const root = "../.."

// The embedded copies are the repository's files: generated, never edited.
func TestEmbeddedCopiesAreCurrent(t *testing.T) {
	for _, f := range append(Files, Vectors...) {
		want, err := os.ReadFile(filepath.Join(root, f))
		require.NoError(t, err)
		got, err := File(f)
		require.NoError(t, err)
		if !bytes.Equal(want, got) {
			t.Errorf("conformance/spec/files holds an old copy of %s: run `go generate ./conformance/spec` (in the conformance module: `cd conformance && go generate ./spec`)", f)
		}
	}
}

func TestLoad(t *testing.T) {
	r, err := Load()
	require.NoError(t, err)
	all := r.All()
	require.Greater(t, len(all), 100)
	j8, ok := r.Get("JOB-8")
	require.True(t, ok)
	assert.Equal(t, Must, j8.Level)
	assert.Equal(t, "docs/spec-wire.md", j8.File)
	assert.Contains(t, j8.Text, "hash_mismatch")
	id3, _ := r.Get("ID-3")
	assert.Equal(t, Should, id3.Level)
	a7, _ := r.Get("API-7")
	assert.Equal(t, "node", a7.Party)
}

func TestParseRefusesBadSpecs(t *testing.T) {
	files := func(extra string) map[string][]byte {
		m := map[string][]byte{}
		for _, f := range Files {
			m[f] = []byte("# x\n")
		}
		m["SPEC.md"] = []byte("# Part\n\n" + extra)
		return m
	}
	_, err := Parse(files("- **A-1** something without a keyword.\n"))
	assert.ErrorContains(t, err, "A-1 has no MUST, SHOULD or MAY")
	_, err = Parse(files("- **A-1 MUST** x.\n- **A-1 MAY** y.\n"))
	assert.ErrorContains(t, err, "A-1 is defined again")
	r, err := Parse(files("- **A-1** A node SHOULD x and\n  MUST y.\n\n- **A-2 MAY** z.\n"))
	require.NoError(t, err)
	a1, _ := r.Get("A-1")
	assert.Equal(t, Must, a1.Level)
	assert.Equal(t, "A node SHOULD x and MUST y.", a1.Text)
	a2, _ := r.Get("A-2")
	assert.Equal(t, May, a2.Level)
}

func TestIDs(t *testing.T) {
	assert.Equal(t, []string{"JOB-8"}, IDs("TestJOB8_HashMismatch"))
	assert.Equal(t, []string{"WIRE-13", "CAPS-3"}, IDs("TestWIRE13_CAPS3_x"))
	assert.Equal(t, []string{"API-10"}, IDs("API-10 bad body"))
	assert.Empty(t, IDs("TestCapacity"))
}

var (
	testFuncRE = regexp.MustCompile(`(?m)^func ((?:Test|Fuzz|Benchmark)\w+)\(`)
	subtestRE  = regexp.MustCompile(`t\.Run\("([^"]+)"`)
)

// testNames returns every test, fuzz target and literal subtest name in the
// repository's Go test files.
func testNames(t *testing.T) map[string][]string {
	names := map[string][]string{} // name → files
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "build" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if !strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, re := range []*regexp.Regexp{testFuncRE, subtestRE} {
			for _, m := range re.FindAllSubmatch(b, -1) {
				names[string(m[1])] = append(names[string(m[1])], p)
			}
		}
		return nil
	})
	require.NoError(t, err)
	return names
}

// Every ID a test name carries exists, and the MUST requirements that no
// test names yet are listed (the conformance suite's cases cover them all:
// see conformance's own coverage test).
func TestRequirementsNamedByTests(t *testing.T) {
	r, err := Load()
	require.NoError(t, err)
	named := map[string]bool{}
	for name, where := range testNames(t) {
		for _, id := range IDs(name) {
			if _, ok := r.Get(id); !ok {
				t.Errorf("%s (%s) names %s, which no specification file defines", name, where[0], id)
			}
			named[id] = true
		}
	}
	var missing []string
	musts := 0
	for _, q := range r.All() {
		if q.Level != Must {
			continue
		}
		musts++
		if !named[q.ID] {
			missing = append(missing, q.ID)
		}
	}
	sort.Slice(missing, func(i, j int) bool { return Less(missing[i], missing[j]) })
	t.Logf("MUST requirements named by a Go test: %d of %d", musts-len(missing), musts)
	if len(missing) > 0 {
		t.Logf("named by no Go test yet (covered by conformance cases instead): %s", strings.Join(missing, " "))
	}
	assert.True(t, slices.IsSortedFunc(missing, func(a, b string) int {
		if Less(a, b) {
			return -1
		}
		return 1
	}))
}
