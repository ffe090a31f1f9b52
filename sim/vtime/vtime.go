// Package vtime runs a function in virtual time outside `go test`.
//
// testing/synctest gives a bubble whose clock moves only when every
// goroutine in it is blocked, which is what makes a simulation of
// hundreds of nodes on two cores honest: CPU time spent compiling,
// signing and routing never shows up as network delay or timeouts. The
// bubble is only available through synctest.Test, which needs a
// *testing.T; Run gets one by starting the testing package's runner with
// testing.MainStart, as a generated test binary does.
//
// testing.MainStart is not covered by the Go 1 compatibility promise: its
// test-dependency interface changes between releases. This file matches
// Go 1.26 (SupportedGo); sim/go.mod pins that toolchain. Another minor
// version either fails to compile here or is refused by Run, and
// TestToolchainIsThePinnedOne fails in CI, saying which version changed.
package vtime

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// SupportedGo is the Go minor version whose testing.MainStart this file
// matches.
const SupportedGo = "go1.26"

var once sync.Mutex

// CheckToolchain reports whether the running Go is SupportedGo.
func CheckToolchain() error {
	v := runtime.Version()
	if v != SupportedGo && !strings.HasPrefix(v, SupportedGo+".") {
		return fmt.Errorf("vtime: built with %s, but virtual time drives testing.MainStart, which is only known to work with %s "+
			"(it is outside the Go 1 promise): build with the toolchain sim/go.mod pins, or port sim/vtime and update the pin", v, SupportedGo)
	}
	return nil
}

// Run calls f inside a synctest bubble and returns f's error. The
// context f gets is cancelled when f returns. Output that the testing
// package prints on its own (PASS and the like) is discarded; a panic in
// f is reported as an error. Run must not be called concurrently.
func Run(f func(ctx context.Context) error) (err error) {
	if !once.TryLock() {
		return errors.New("vtime: Run is already running")
	}
	defer once.Unlock()
	if err := CheckToolchain(); err != nil {
		return err
	}

	var (
		ferr error
		ran  bool
	)
	tests := []testing.InternalTest{{
		Name: "VirtualTime",
		F: func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				defer func() {
					if p := recover(); p != nil {
						ferr = fmt.Errorf("vtime: panic in the simulation: %v", p)
					}
				}()
				ran = true
				ferr = f(t.Context())
			})
		},
	}}
	m := testing.MainStart(deps{}, tests, nil, nil, nil)
	// MainStart registered the test flags on the default flag set; the
	// caller's own flags are not for it.
	if !flag.Parsed() {
		_ = flag.CommandLine.Parse(nil)
	}
	// Inside a test binary go test may name a test log file; the inner run
	// would then reopen it and close the outer run's handle, and the outer
	// run fails at exit with "file already closed". The log is cmd/go's
	// cache bookkeeping for the outer run only.
	if lf := flag.Lookup("test.testlogfile"); lf != nil && lf.Value.String() != "" {
		old := lf.Value.String()
		_ = lf.Value.Set("")
		defer func() { _ = lf.Value.Set(old) }()
	}
	devnull, derr := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if derr != nil {
		return fmt.Errorf("vtime: %w", derr)
	}
	defer devnull.Close()
	stdout := os.Stdout
	os.Stdout = devnull
	code := m.Run()
	os.Stdout = stdout
	switch {
	case ferr != nil:
		return ferr
	case !ran:
		return errors.New("vtime: the simulation did not run")
	case code != 0:
		return fmt.Errorf("vtime: the virtual-time runner failed (exit code %d): goroutines were left blocked when the run ended", code)
	}
	return nil
}

// corpusEntry mirrors testing's unexported fuzzing type (an alias of an
// unnamed struct, so an identical struct type satisfies it).
type corpusEntry = struct {
	Parent     string
	Path       string
	Data       []byte
	Values     []any
	Generation int
	IsSeed     bool
}

// deps is the minimal test-dependency set testing.MainStart needs: no
// profiles, no fuzzing, no coverage, every test matches.
type deps struct{}

func (deps) ImportPath() string                          { return "" }
func (deps) ModulePath() string                          { return "" }
func (deps) MatchString(string, string) (bool, error)    { return true, nil }
func (deps) SetPanicOnExit0(bool)                        {}
func (deps) StartCPUProfile(io.Writer) error             { return nil }
func (deps) StopCPUProfile()                             {}
func (deps) StartTestLog(io.Writer)                      {}
func (deps) StopTestLog() error                          { return nil }
func (deps) WriteProfileTo(string, io.Writer, int) error { return nil }
func (deps) CoordinateFuzzing(time.Duration, int64, time.Duration, int64, int, []corpusEntry, []reflect.Type, string, string) error {
	return errors.New("vtime: no fuzzing")
}
func (deps) RunFuzzWorker(func(corpusEntry) error) error { return errors.New("vtime: no fuzzing") }
func (deps) ReadCorpus(string, []reflect.Type) ([]corpusEntry, error) {
	return nil, nil
}
func (deps) CheckCorpus([]any, []reflect.Type) error { return nil }
func (deps) ResetCoverage()                          {}
func (deps) SnapshotCoverage()                       {}
func (deps) InitRuntimeCoverage() (string, func(string, string) (string, error), func() float64) {
	return "", nil, nil
}
