package phase

import "fmt"

// goArches are the GOARCH values Go supports as build targets: the names a
// capability record, an offer or a query may use for an architecture.
var goArches = []string{
	"386", "amd64", "arm", "arm64", "loong64", "mips", "mipsle", "mips64",
	"mips64le", "ppc64", "ppc64le", "riscv64", "s390x", "wasm",
}

// archAliases are the non-Go spellings accepted as input.
var archAliases = map[string]string{"x86_64": "amd64", "aarch64": "arm64"}

// Arches returns the Go architecture names Phase accepts.
func Arches() []string { return append([]string(nil), goArches...) }

// NormalizeArch returns the Go name of an architecture: Go names pass
// unchanged, x86_64 becomes amd64 and aarch64 becomes arm64. Anything else,
// including the empty string and other letter cases, is an error.
func NormalizeArch(s string) (string, error) {
	if contains(goArches, s) {
		return s, nil
	}
	if g, ok := archAliases[s]; ok {
		return g, nil
	}
	return "", fmt.Errorf("unknown architecture %s (want a Go GOARCH name such as amd64 or arm64, or x86_64/aarch64)", Quote(s))
}

// SameArch reports whether two architecture names mean the same machine
// (an unknown name equals only itself).
func SameArch(a, b string) bool {
	if na, err := NormalizeArch(a); err == nil {
		a = na
	}
	if nb, err := NormalizeArch(b); err == nil {
		b = nb
	}
	return a == b
}
