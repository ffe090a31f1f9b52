package packaging

import (
	"fmt"
	"regexp"
	"strconv"

	"github.com/phase-protocol/plasm/node/config"
)

// RuntimeHeadroomMB is memory for the Go runtime, the API and what the
// compile cache's estimate of a module's size misses, beyond what the
// configuration bounds.
const RuntimeHeadroomMB = 512

// ExtraFDs are file descriptors beyond libp2p's network.max_fds: the API's
// connections, the compile cache and data files.
const ExtraFDs = 1024

// Limits derives the unit's MemoryMax (MiB) and LimitNOFILE from a
// configuration: every job at its memory limit at once, libp2p's own
// budget, the module store, the upload buffer and the in-memory compile
// cache, plus RuntimeHeadroomMB; libp2p's descriptors plus ExtraFDs.
func Limits(c config.Config) (memoryMaxMB, noFile int) {
	memoryMaxMB = c.Jobs.MaxMemoryMB*c.Jobs.MaxConcurrent + c.Network.MaxMemoryMB + c.Jobs.ModuleStoreMB +
		c.Jobs.UploadBufferMB + c.Wasm.MemoryCacheMB + RuntimeHeadroomMB
	return memoryMaxMB, c.Network.MaxFDs + ExtraFDs
}

var (
	memoryMaxLine = regexp.MustCompile(`(?m)^MemoryMax=([0-9]+)M$`)
	noFileLine    = regexp.MustCompile(`(?m)^LimitNOFILE=([0-9]+)$`)
)

// UnitLimits reads MemoryMax (in M) and LimitNOFILE from a unit file.
func UnitLimits(unit []byte) (memoryMaxMB, noFile int, err error) {
	m := memoryMaxLine.FindSubmatch(unit)
	n := noFileLine.FindSubmatch(unit)
	if m == nil || n == nil {
		return 0, 0, fmt.Errorf("unit has no MemoryMax=<N>M or LimitNOFILE=<N> line")
	}
	memoryMaxMB, _ = strconv.Atoi(string(m[1]))
	noFile, _ = strconv.Atoi(string(n[1]))
	return memoryMaxMB, noFile, nil
}
