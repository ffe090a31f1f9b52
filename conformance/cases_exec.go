package conformance

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"time"
)

// execCases: what runs, and how it ends (SPEC §5), each with a receipt.
func execCases() []Case {
	outcome := func(name, module string, j Job, want string, reqs ...string) Case {
		return Case{
			Name: "exec/" + name,
			Reqs: append([]string{"EXEC-5", "RCPT-1"}, reqs...),
			Side: SideNode,
			Run: func(t *T) {
				j.Module = t.Module(module)
				x := t.Run(j)
				t.Check(x.Receipt.Str("outcome") == want, "%s: outcome %s, want %s", module, x.Receipt.Str("outcome"), want)
				if want != "exited" {
					t.Check(x.Receipt.Int("exit_code") == -1, "exit_code %d for outcome %s, want -1", x.Receipt.Int("exit_code"), want)
				}
			},
		}
	}
	return []Case{
		outcome("exit-code", "exit7", Job{}, "exited"),
		outcome("trap", "trap", Job{}, "trapped"),
		outcome("tight-loop-times-out", "loop", Job{TimeoutSeconds: 1}, "timeout", "EXEC-3"),
		outcome("memory-grow-refused", "grow", Job{MemoryMB: 2}, "memory_limit", "EXEC-2"),
		outcome("declared-minimum-over-limit", "bigmem", Job{MemoryMB: 16}, "memory_limit", "EXEC-2"),
		{
			Name: "exec/memory-limit-enforced",
			Reqs: []string{"EXEC-2"},
			Side: SideNode,
			Run: func(t *T) {
				small := t.Run(Job{Module: t.Module("mem8"), MemoryMB: 2})
				t.Check(small.Receipt.Str("outcome") == "memory_limit", "growing to 8 MiB under a 2 MB limit: outcome %s, stdout %q", small.Receipt.Str("outcome"), small.Stdout)
				big := t.Run(Job{Module: t.Module("mem8"), MemoryMB: 16})
				t.Check(big.Receipt.Str("outcome") == "exited" && string(big.Stdout) == "ok\n", "growing to 8 MiB under 16 MB: outcome %s", big.Receipt.Str("outcome"))
			},
		},
		{
			Name: "exec/exit-code-and-stderr",
			Reqs: []string{"EXEC-5", "RCPT-9"},
			Side: SideNode,
			Run: func(t *T) {
				x := t.Run(Job{Module: t.Module("exit7")})
				t.Check(x.Receipt.Int("exit_code") == 7, "exit_code %d, want 7", x.Receipt.Int("exit_code"))
				t.Check(string(x.Stderr) == "bye", "stderr %q, want \"bye\"", x.Stderr)
			},
		},
		{
			Name: "exec/invalid-module",
			Reqs: []string{"EXEC-5", "RCPT-1"},
			Side: SideNode,
			Run: func(t *T) {
				x := t.Run(Job{Module: []byte("\x00asm\x01\x00\x00\x00 definitely not a module")})
				t.Check(x.Receipt.Str("outcome") == "invalid_module", "outcome %s, want invalid_module (never exited)", x.Receipt.Str("outcome"))
			},
		},
		{
			Name: "exec/output-capped-and-flagged",
			Reqs: []string{"EXEC-4", "JOB-10"},
			Side: SideNode,
			Run: func(t *T) {
				x := t.Run(Job{Module: t.Module("flood"), TimeoutSeconds: 2})
				lim, _ := x.Answer["limits"].(map[string]any)
				cap := num(lim["stdout_cap"])
				t.Check(int64(len(x.Stdout)) == cap, "stdout %d bytes, stdout_cap %d", len(x.Stdout), cap)
				t.Check(x.Receipt.Bool("stdout_truncated"), "stdout_truncated is false for a flood")
			},
		},
		{
			Name: "exec/limits-clamped-and-reported",
			Reqs: []string{"EXEC-7", "JOB-11"},
			Side: SideNode,
			Run: func(t *T) {
				rec := t.Record()
				maxMem, maxT := rec.Limit("max_memory_mb"), rec.Limit("max_timeout_seconds")
				if maxMem >= rec.Int("memory_mb") || maxMem >= 32768 {
					t.NA("the node's per-job memory maximum is its total: nothing to clamp")
				}
				mem := maxMem + 1
				x := t.Run(Job{Module: t.Module("tiny"), MemoryMB: int(mem), TimeoutSeconds: int(min(maxT+1, 3600))})
				acc := x.Answer["limits"].(map[string]any)
				t.Check(num(acc["memory_mb"]) == maxMem, "JOB-11/EXEC-7: applied memory_mb %v, want the per-job maximum %d", acc["memory_mb"], maxMem)
				if maxT < 3600 {
					t.Check(num(acc["timeout_ms"]) == maxT*1000, "applied timeout_ms %v, want %d", acc["timeout_ms"], maxT*1000)
				}
				l := x.Receipt.Limits()
				t.Check(l["memory_mb"] == num(acc["memory_mb"]) && l["timeout_ms"] == num(acc["timeout_ms"]) &&
					l["stdout_cap"] == num(acc["stdout_cap"]) && l["stderr_cap"] == num(acc["stderr_cap"]),
					"receipt limits %v differ from accepted %v", l, acc)
			},
		},
		{
			Name: "exec/no-environment-no-filesystem",
			Reqs: []string{"EXEC-1"},
			Side: SideNode,
			Run: func(t *T) {
				x := t.Run(Job{Module: t.Module("probe")})
				p := x.Stdout
				if len(p) != 64 {
					t.Fatalf("probe wrote %d bytes, want 64", len(p))
				}
				t.Check(binary.LittleEndian.Uint32(p[0:]) == 0, "%d environment variables visible", binary.LittleEndian.Uint32(p[0:]))
				t.Check(binary.LittleEndian.Uint32(p[8:]) != 0, "fd 3 is a preopened directory (fd_prestat_get succeeded)")
				t.Check(binary.LittleEndian.Uint32(p[12:]) != 0, "path_open in fd 3 succeeded")
			},
		},
		{
			Name: "exec/deterministic-clock-and-random",
			Reqs: []string{"EXEC-6"},
			Side: SideNode,
			Run: func(t *T) {
				const seed = 42
				a := t.Run(Job{Module: t.Module("probe"), Deterministic: true, Seed: seed})
				b := t.Run(Job{Module: t.Module("probe"), Deterministic: true, Seed: seed})
				t.Check(bytes.Equal(a.Stdout, b.Stdout), "two deterministic runs differ: %x / %x", a.Stdout, b.Stdout)
				t.Check(a.Receipt.Bool("deterministic"), "receipt deterministic is false")
				p := a.Stdout
				if len(p) != 64 {
					t.Fatalf("probe wrote %d bytes", len(p))
				}
				rt1, rt2 := binary.LittleEndian.Uint64(p[16:]), binary.LittleEndian.Uint64(p[24:])
				mo1, mo2 := binary.LittleEndian.Uint64(p[32:]), binary.LittleEndian.Uint64(p[40:])
				t.Check(rt1 == 1640995200000000000 && rt2 == rt1+1_000_000, "realtime readings %d, %d", rt1, rt2)
				t.Check(mo1 == 0 && mo2 == 1_000_000, "monotonic readings %d, %d", mo1, mo2)
				var key [32]byte
				binary.LittleEndian.PutUint64(key[:8], seed)
				want := make([]byte, 16)
				_, _ = rand.NewChaCha8(key).Read(want)
				t.Check(bytes.Equal(p[48:], want), "random bytes %x, want ChaCha8(seed 42) %x", p[48:], want)
			},
		},
		{
			Name: "exec/wall-clock-deadline",
			Reqs: []string{"EXEC-3"},
			Side: SideNode,
			Run: func(t *T) {
				start := time.Now()
				x := t.Run(Job{Module: t.Module("slow"), TimeoutSeconds: 1})
				t.Check(x.Receipt.Str("outcome") == "timeout", "a sleeping guest over its 1 s: outcome %s", x.Receipt.Str("outcome"))
				t.Check(time.Since(start) < 15*time.Second, "the 1 s job took %s", time.Since(start))
			},
		},
	}
}
