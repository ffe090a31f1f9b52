// Package manifest parses and validates a job manifest: the module to run
// (by hash) and the resources the job asks for. The field names and ranges
// are the seed prototype's; schemas/manifest.schema.json says the same thing
// in JSON Schema.
package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// CurrentVersion is the manifest version this implementation writes.
const CurrentVersion = "0.1"

// Allowed ranges, inclusive.
const (
	MinCPUCores       = 1
	MaxCPUCores       = 64
	MinMemoryMB       = 1
	MaxMemoryMB       = 32768
	MinTimeoutSeconds = 1
	MaxTimeoutSeconds = 3600
)

// HashPrefix starts every module hash.
const HashPrefix = "sha256:"

// Manifest describes one job's module and requested resources.
type Manifest struct {
	Version        string `json:"version"`
	ModuleHash     string `json:"module_hash"`
	CPUCores       int    `json:"cpu_cores"`
	MemoryMB       int    `json:"memory_mb"`
	TimeoutSeconds int    `json:"timeout_seconds"`
}

// wire mirrors Manifest with pointers so that a missing or null field can be
// told apart from a zero value.
type wire struct {
	Version        *string `json:"version"`
	ModuleHash     *string `json:"module_hash"`
	CPUCores       *int    `json:"cpu_cores"`
	MemoryMB       *int    `json:"memory_mb"`
	TimeoutSeconds *int    `json:"timeout_seconds"`
}

// Parse decodes one JSON manifest strictly: unknown fields, missing or null
// fields, wrong types and trailing data are errors naming the field, and the
// result must pass Validate.
func Parse(data []byte) (Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var w wire
	if err := dec.Decode(&w); err != nil {
		return Manifest{}, decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Manifest{}, errors.New("manifest: trailing data after the JSON object")
	}
	var missing []error
	req := func(present bool, name string) {
		if !present {
			missing = append(missing, fmt.Errorf("manifest: %s is required", name))
		}
	}
	req(w.Version != nil, "version")
	req(w.ModuleHash != nil, "module_hash")
	req(w.CPUCores != nil, "cpu_cores")
	req(w.MemoryMB != nil, "memory_mb")
	req(w.TimeoutSeconds != nil, "timeout_seconds")
	if len(missing) > 0 {
		return Manifest{}, errors.Join(missing...)
	}
	m := Manifest{
		Version:        *w.Version,
		ModuleHash:     *w.ModuleHash,
		CPUCores:       *w.CPUCores,
		MemoryMB:       *w.MemoryMB,
		TimeoutSeconds: *w.TimeoutSeconds,
	}
	if err := m.Validate(); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

func decodeError(err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		if typeErr.Field == "" {
			return fmt.Errorf("manifest: must be a JSON object, got %s", typeErr.Value)
		}
		return fmt.Errorf("manifest: %s must be %s, got %s", typeErr.Field, jsonKind(typeErr.Type.Kind().String()), typeErr.Value)
	}
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) {
		return fmt.Errorf("manifest: invalid JSON at offset %d: %w", syntaxErr.Offset, err)
	}
	if errors.Is(err, io.EOF) {
		return errors.New("manifest: empty input, want a JSON object")
	}
	// encoding/json reports unknown fields as `json: unknown field "x"`.
	if msg := err.Error(); strings.HasPrefix(msg, "json: unknown field ") {
		return fmt.Errorf("manifest: unknown field %s", strings.TrimPrefix(msg, "json: unknown field "))
	}
	return fmt.Errorf("manifest: %w", err)
}

func jsonKind(goKind string) string {
	switch goKind {
	case "int":
		return "an integer"
	case "string":
		return "a string"
	default:
		return goKind
	}
}

// Validate reports every problem with m, each naming the field and what is
// allowed (for example `manifest: memory_mb 0 out of range 1–32768`),
// joined with errors.Join.
func (m Manifest) Validate() error {
	var errs []error
	if err := validVersion(m.Version); err != nil {
		errs = append(errs, err)
	}
	if err := ValidModuleHash(m.ModuleHash); err != nil {
		errs = append(errs, fmt.Errorf("manifest: %w", err))
	}
	errs = appendRange(errs, "cpu_cores", m.CPUCores, MinCPUCores, MaxCPUCores)
	errs = appendRange(errs, "memory_mb", m.MemoryMB, MinMemoryMB, MaxMemoryMB)
	errs = appendRange(errs, "timeout_seconds", m.TimeoutSeconds, MinTimeoutSeconds, MaxTimeoutSeconds)
	return errors.Join(errs...)
}

func appendRange(errs []error, field string, v, lo, hi int) []error {
	if v < lo || v > hi {
		return append(errs, fmt.Errorf("manifest: %s %d out of range %d–%d", field, v, lo, hi))
	}
	return errs
}

// validVersion accepts "<digits>.<digits>", e.g. "0.1".
func validVersion(v string) error {
	if v == "" {
		return errors.New(`manifest: version is required (e.g. "0.1")`)
	}
	major, minor, ok := strings.Cut(v, ".")
	if !ok || !allDigits(major) || !allDigits(minor) || len(v) > 16 {
		return fmt.Errorf(`manifest: version %s must be <digits>.<digits> (e.g. "0.1")`, quote(v))
	}
	return nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ValidModuleHash checks the form "sha256:" followed by 64 lowercase hex
// digits.
func ValidModuleHash(s string) error {
	if s == "" {
		return errors.New("module_hash is required")
	}
	if !isHash(s) {
		return fmt.Errorf(`module_hash %s must be "sha256:" followed by 64 lowercase hex digits`, quote(s))
	}
	return nil
}

func isHash(s string) bool {
	hexPart, ok := strings.CutPrefix(s, HashPrefix)
	if !ok || len(hexPart) != 64 {
		return false
	}
	for i := 0; i < len(hexPart); i++ {
		c := hexPart[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// quote shows a caller-supplied value safely: quoted, escaped and shortened.
func quote(s string) string {
	const max = 80
	if len(s) > max {
		return fmt.Sprintf("%q…", s[:max])
	}
	return fmt.Sprintf("%q", s)
}
