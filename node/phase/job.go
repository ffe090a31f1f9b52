package phase

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Job is what someone asks the network to run, as every front end takes it:
// the SDK (client.Job), the API (POST /v1/jobs), the CLI (run, submit). It is
// checked once, by Validate, with one wording, whatever the front end. Zero
// numbers mean "the default" (DefaultMemoryMB and so on).
type Job struct {
	Module         []byte
	Args           []string
	Stdin          []byte
	MemoryMB       int
	TimeoutSeconds int
	CPUCores       int
	Arch           string // preferred arch (Go name, or x86_64/aarch64)
	RequireArch    bool   // Arch is a hard requirement
	Deterministic  bool   // fixed clock and seeded random: byte-identical output on every node
	Seed           int64  // only with Deterministic
	Attempts       int    // nodes tried at most (0: max(DefaultAttempts, Replicas+2))
	Replicas       int    // distinct nodes that must agree (0: 1)
}

// Defaults of a Job's zero values.
const (
	DefaultMemoryMB       = 256
	DefaultTimeoutSeconds = 30
	DefaultCPUCores       = 1
	DefaultAttempts       = 5
	DefaultReplicas       = 1
	MaxAttempts           = 100
	MaxReplicas           = 16
)

// FieldError is a bad value in a request, named by its JSON member name.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func fieldErr(field, format string, a ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, a...)}
}

// Validate checks the job; the first problem is returned as a *FieldError
// naming the JSON member (memory_mb, args[3], ...). These are the rules a
// node would apply to the offer, so a job that passes is one every node can
// at least consider.
func (j *Job) Validate() error {
	if len(j.Module) == 0 {
		return fieldErr("module", "missing or empty (the .wasm bytes)")
	}
	for _, r := range []struct {
		field   string
		v, hi   int
		zeroDef string
	}{
		{"memory_mb", j.MemoryMB, MaxMemoryMB, strconv.Itoa(DefaultMemoryMB)},
		{"timeout_seconds", j.TimeoutSeconds, MaxTimeoutSeconds, strconv.Itoa(DefaultTimeoutSeconds)},
		{"cpu_cores", j.CPUCores, MaxCPUCores, strconv.Itoa(DefaultCPUCores)},
		{"attempts", j.Attempts, MaxAttempts, "max(5, replicas+2)"},
		{"replicas", j.Replicas, MaxReplicas, "1"},
	} {
		if r.v < 0 || r.v > r.hi {
			return fieldErr(r.field, "%d out of range 0–%d (0: %s)", r.v, r.hi, r.zeroDef)
		}
	}
	if j.Attempts > 0 && j.Attempts < max(j.Replicas, 1) {
		return fieldErr("attempts", "%d is fewer than replicas %d", j.Attempts, j.Replicas)
	}
	if err := CheckArgs(j.Args); err != nil {
		return err
	}
	return CheckArchSeed(j.Arch, j.RequireArch, j.Deterministic, j.Seed)
}

// CheckArgs checks guest arguments: at most MaxArgs, none containing NUL
// (WASI passes arguments as NUL-terminated strings).
func CheckArgs(args []string) error {
	if len(args) > MaxArgs {
		return fieldErr("args", "%d entries, at most %d allowed", len(args), MaxArgs)
	}
	for i, a := range args {
		if strings.IndexByte(a, 0) >= 0 {
			return fieldErr("args["+strconv.Itoa(i)+"]", "contains a NUL character")
		}
	}
	return nil
}

// CheckArchSeed checks the arch and deterministic members together, as an
// offer carries them (WIRE-23): arch a known name, require_arch only with
// arch, seed only with deterministic.
func CheckArchSeed(arch string, requireArch, deterministic bool, seed int64) error {
	if arch != "" {
		if _, err := NormalizeArch(arch); err != nil {
			return fieldErr("arch", "%v", err)
		}
	} else if requireArch {
		return fieldErr("require_arch", "is true but arch is absent")
	}
	if seed != 0 && !deterministic {
		return fieldErr("seed", "is set but deterministic is false")
	}
	return nil
}

// Manifest values of a valid job: defaults applied, nothing else changed.
func (j *Job) MemoryOrDefault() int  { return orDefault(j.MemoryMB, DefaultMemoryMB) }
func (j *Job) TimeoutOrDefault() int { return orDefault(j.TimeoutSeconds, DefaultTimeoutSeconds) }
func (j *Job) CoresOrDefault() int   { return orDefault(j.CPUCores, DefaultCPUCores) }

// ReplicasOrDefault and AttemptsOrDefault apply the scheduling defaults.
func (j *Job) ReplicasOrDefault() int { return orDefault(j.Replicas, DefaultReplicas) }
func (j *Job) AttemptsOrDefault() int {
	if j.Attempts > 0 {
		return j.Attempts
	}
	return max(DefaultAttempts, j.ReplicasOrDefault()+2)
}

func orDefault(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}

// ErrInvalidJob is wrapped by errors about a Job that cannot be sent.
var ErrInvalidJob = errors.New("invalid job")
