package main

import (
	"math"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
)

// oneJobGC changes the process's collector: each case restores it.
func TestOneJobGC(t *testing.T) {
	for _, tt := range []struct {
		name      string
		env       map[string]string
		wantOff   bool
		wantLimit int64
	}{
		{name: "off, limited above the guest", wantOff: true, wantLimit: (64 + oneJobHeadroomMB) << 20},
		{name: "GOGC set: left alone", env: map[string]string{"GOGC": "200"}, wantLimit: math.MaxInt64},
		{name: "GOMEMLIMIT set: left alone", env: map[string]string{"GOMEMLIMIT": "1GiB"}, wantLimit: math.MaxInt64},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("GOGC", "")
			t.Setenv("GOMEMLIMIT", "")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			prevGC, prevLimit := debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64)
			defer func() { debug.SetGCPercent(prevGC); debug.SetMemoryLimit(prevLimit) }()

			oneJobGC(64)
			gc := debug.SetGCPercent(100)
			assert.Equal(t, tt.wantOff, gc < 0, "collector off")
			assert.Equal(t, tt.wantLimit, debug.SetMemoryLimit(-1))
		})
	}
}
