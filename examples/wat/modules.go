// Package wat ships the hand-written WebAssembly modules of this
// directory, assembled beside their .wat sources, inside the programs
// that need them without a checkout (plasmsim's built-in workload).
package wat

import (
	"embed"
	"fmt"
)

//go:embed *.wasm
var files embed.FS

// Module returns NAME.wasm, or an error naming the module if there is none.
func Module(name string) ([]byte, error) {
	b, err := files.ReadFile(name + ".wasm")
	if err != nil {
		return nil, fmt.Errorf("module %s: not one of the built-in modules", name)
	}
	return b, nil
}
