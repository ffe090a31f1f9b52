// Command sync copies the repository's specification files into
// conformance/spec/files, where they are embedded. Run by go generate.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/phase-protocol/plasm/conformance/spec"
)

func main() {
	for _, f := range append(spec.Files, spec.Vectors...) {
		b, err := os.ReadFile(filepath.Join("..", "..", f))
		if err != nil {
			fmt.Fprintln(os.Stderr, "sync:", err)
			os.Exit(1)
		}
		if err := os.WriteFile(filepath.Join("files", strings.ReplaceAll(f, "/", "_")), b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "sync:", err)
			os.Exit(1)
		}
	}
}
