package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/phase-protocol/plasm/internal/testwasm"
	"github.com/phase-protocol/plasm/node/config"
)

func TestDocsAreCurrent(t *testing.T) {
	root, err := testwasm.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, err := generate(root)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is not what node/config gives: run `go run ./internal/configdoc` and commit", name)
		}
	}
}

func TestReferenceCoversEveryField(t *testing.T) {
	root, err := testwasm.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	comments, err := fieldComments(filepath.Join(root, "node", "config", "config.go"))
	if err != nil {
		t.Fatal(err)
	}
	table, err := reference(comments)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| `data_dir` | string | `\"\"` |",
		"| `jobs.max_memory_mb` | integer | `512` | 1–32768 |",
		"| `jobs.max_per_peer` | integer | `4` | 1–`jobs.max_concurrent` |",
		"| `dht.bootstrap_retry_max` | duration | `\"1m0s\"` |",
		"| `jobs.auth.allow` | list of strings | `[]` |",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("reference lacks %q", want)
		}
	}
	// One row per range Validate checks.
	for _, r := range config.Default().Ranges() {
		if !strings.Contains(table, "| `"+r.Field+"` |") {
			t.Errorf("no row for %s", r.Field)
		}
	}
	delete(comments, "Network.MaxFDs")
	if _, err := reference(comments); err == nil || !strings.Contains(err.Error(), "network.max_fds") {
		t.Errorf("a field without a comment: %v", err)
	}
}
