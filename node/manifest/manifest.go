// Package manifest parses and validates a job manifest: the module to run
// (by hash) and the resources the job asks for. The field names and ranges
// are the seed prototype's; schemas/manifest.schema.json says the same thing
// in JSON Schema.
package manifest

import (
	"errors"
	"fmt"

	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/strictjson"
)

// CurrentVersion is the one manifest version of protocol v1 (MAN-1).
const CurrentVersion = phase.ManifestVersion

// Manifest describes one job's module and requested resources.
type Manifest struct {
	Version        string `json:"version"`
	ModuleHash     string `json:"module_hash"`
	CPUCores       int    `json:"cpu_cores"`
	MemoryMB       int    `json:"memory_mb"`
	TimeoutSeconds int    `json:"timeout_seconds"`
}

// names are the members a manifest has, all required (MAN-1).
var names = []string{"version", "module_hash", "cpu_cores", "memory_mb", "timeout_seconds"}

// Parse decodes one JSON manifest strictly: unknown, missing or null
// members, wrong types, duplicate names and trailing data are errors naming
// the member, and the result must pass Validate.
func Parse(data []byte) (Manifest, error) {
	f, err := strictjson.ParseObject(data)
	if err != nil {
		return Manifest{}, fmt.Errorf("manifest: %w", err)
	}
	return FromFields(f)
}

// FromFields decodes a manifest from an object already read strictly (the
// manifest inside an offer).
func FromFields(f *strictjson.Fields) (Manifest, error) {
	if f == nil {
		return Manifest{}, errors.New("manifest: missing")
	}
	f.Only(names...)
	m := Manifest{
		Version:        f.String("version", true),
		ModuleHash:     f.String("module_hash", true),
		CPUCores:       int(f.Int64("cpu_cores", true)),
		MemoryMB:       int(f.Int64("memory_mb", true)),
		TimeoutSeconds: int(f.Int64("timeout_seconds", true)),
	}
	if err := f.Err(); err != nil {
		return Manifest{}, fmt.Errorf("manifest: %w", err) // a *strictjson.FieldError naming the member
	}
	if err := m.Validate(); err != nil {
		return Manifest{}, err
	}
	return m, nil
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
	errs = appendRange(errs, "cpu_cores", m.CPUCores, phase.MinCPUCores, phase.MaxCPUCores)
	errs = appendRange(errs, "memory_mb", m.MemoryMB, phase.MinMemoryMB, phase.MaxMemoryMB)
	errs = appendRange(errs, "timeout_seconds", m.TimeoutSeconds, phase.MinTimeoutSeconds, phase.MaxTimeoutSeconds)
	return errors.Join(errs...)
}

func appendRange(errs []error, field string, v, lo, hi int) []error {
	if v < lo || v > hi {
		return append(errs, fmt.Errorf("manifest: %s %d out of range %d–%d", field, v, lo, hi))
	}
	return errs
}

// validVersion accepts the one version this protocol defines.
func validVersion(v string) error {
	if v != CurrentVersion {
		return fmt.Errorf("manifest: version %s is not %q, the only manifest version of protocol v1", phase.Quote(v), CurrentVersion)
	}
	return nil
}

// ValidModuleHash checks the form "sha256:" followed by 64 lowercase hex
// digits.
func ValidModuleHash(s string) error {
	if err := phase.CheckHash(s); err != nil {
		return fmt.Errorf("module_hash %w", err)
	}
	return nil
}
