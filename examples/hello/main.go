// Command hello is the Phase example job: it prints its input reversed.
// The input is its arguments joined by spaces, or standard input when it
// has no arguments. Build it with GOOS=wasip1 GOARCH=wasm (make wasm).
//
// It writes with os.File rather than fmt: fmt brings in reflection and
// Unicode tables, and every byte of the module is decoded and validated
// each time a fresh process loads it.
package main

import (
	"io"
	"os"
	"strings"
)

func main() {
	input := strings.Join(os.Args[1:], " ")
	if len(os.Args) < 2 {
		b, err := io.ReadAll(os.Stdin)
		if err != nil {
			os.Stderr.WriteString("hello: reading stdin: " + err.Error() + "\n")
			os.Exit(1)
		}
		input = strings.TrimSuffix(string(b), "\n")
	}
	os.Stdout.WriteString(reverse(input) + "\n")
}

// reverse reverses by rune so multi-byte characters stay intact.
func reverse(s string) string {
	r := []rune(s)
	for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
		r[i], r[j] = r[j], r[i]
	}
	return string(r)
}
