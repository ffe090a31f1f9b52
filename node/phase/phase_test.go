package phase

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// JOB-15: a nonce is 32 fresh random bytes as lowercase hex.
func TestJOB15_NewNonce(t *testing.T) {
	a, b := NewNonce(), NewNonce()
	require.NoError(t, CheckNonce(a))
	require.NoError(t, CheckNonce(b))
	assert.NotEqual(t, a, b)
	assert.Error(t, CheckNonce(a[:63]))
	assert.Error(t, CheckNonce("A"+a[1:]))
}

func TestNewJobIDIsValid(t *testing.T) {
	id := NewJobID()
	require.NoError(t, CheckJobID(id))
	assert.NotEqual(t, id, NewJobID())
}

func TestCheckJobID(t *testing.T) {
	for _, ok := range []string{"a", "job-1", "x.y_z:w", string(make128('j'))} {
		assert.NoError(t, CheckJobID(ok), ok)
	}
	for _, bad := range []string{"", "a b", "ü", string(make128('j')) + "j", "a/b"} {
		assert.Error(t, CheckJobID(bad), bad)
	}
}

func make128(c byte) []byte {
	b := make([]byte, MaxJobIDLen)
	for i := range b {
		b[i] = c
	}
	return b
}

func TestEnumAccessorsAreCopies(t *testing.T) {
	r := Reasons()
	r[0] = "mutated"
	assert.Equal(t, ReasonInsufficientResources, Reasons()[0])
	assert.Len(t, Outcomes(), 6)
	assert.Len(t, Codes(), 6)
	assert.True(t, IsOutcome(OutcomeTimeout))
	assert.False(t, IsReason("busy"))
	assert.True(t, IsCode(CodeProtocol))
}

// WIRE-23: Go names pass, x86_64 and aarch64 are aliases, nothing else.
func TestWIRE23_NormalizeArch(t *testing.T) {
	for in, want := range map[string]string{"amd64": "amd64", "x86_64": "amd64", "aarch64": "arm64", "riscv64": "riscv64"} {
		got, err := NormalizeArch(in)
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
	for _, bad := range []string{"", "AMD64", "x86-64", "arm64 ", "i386"} {
		_, err := NormalizeArch(bad)
		assert.Error(t, err, bad)
	}
	assert.True(t, SameArch("x86_64", "amd64"))
	assert.False(t, SameArch("arm64", "amd64"))
}

func TestHashNotation(t *testing.T) {
	h := HashBytes(nil)
	assert.Equal(t, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", h)
	assert.True(t, IsHash(h))
	assert.False(t, IsHash(h[:70]))
	assert.Error(t, CheckHash("SHA256:"+h[7:]))
}

func TestShortIDAndQuote(t *testing.T) {
	assert.Equal(t, "12D3Ko..dBfeSB", ShortID("12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfeSB"))
	assert.Equal(t, "short", ShortID("short"))
	q := Quote(string(make([]byte, 200)))
	assert.Contains(t, q, "(200 bytes)")
	assert.Equal(t, `"a\nb"`, Quote("a\nb"))
}

// MAN-1 and the job rules every front end shares.
func TestMAN1_JobValidate(t *testing.T) {
	good := func() Job { return Job{Module: []byte{0}} }
	require.NoError(t, (&Job{Module: []byte{1}, Arch: "aarch64", RequireArch: true, Deterministic: true, Seed: 3}).Validate())
	cases := []struct {
		name string
		edit func(*Job)
		want string
	}{
		{"no module", func(j *Job) { j.Module = nil }, "module: missing"},
		{"memory", func(j *Job) { j.MemoryMB = 32769 }, "memory_mb: 32769 out of range 0–32768"},
		{"timeout", func(j *Job) { j.TimeoutSeconds = -1 }, "timeout_seconds: -1 out of range 0–3600"},
		{"cores", func(j *Job) { j.CPUCores = 65 }, "cpu_cores: 65 out of range 0–64"},
		{"attempts", func(j *Job) { j.Attempts = 101 }, "attempts: 101 out of range 0–100"},
		{"replicas", func(j *Job) { j.Replicas = 17 }, "replicas: 17 out of range 0–16"},
		{"attempts below replicas", func(j *Job) { j.Attempts, j.Replicas = 2, 3 }, "attempts: 2 is fewer than replicas 3"},
		{"nul arg", func(j *Job) { j.Args = []string{"a", "b\x00"} }, "args[1]: contains a NUL character"},
		{"too many args", func(j *Job) { j.Args = make([]string, MaxArgs+1) }, "args: 1025 entries"},
		{"bad arch", func(j *Job) { j.Arch = "x86" }, "arch: unknown architecture"},
		{"require without arch", func(j *Job) { j.RequireArch = true }, "require_arch: is true but arch is absent"},
		{"seed without deterministic", func(j *Job) { j.Seed = 1 }, "seed: is set but deterministic is false"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j := good()
			c.edit(&j)
			err := j.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
			var fe *FieldError
			assert.ErrorAs(t, err, &fe)
		})
	}
	j := good()
	assert.Equal(t, DefaultMemoryMB, j.MemoryOrDefault())
	assert.Equal(t, 5, j.AttemptsOrDefault())
	j.Replicas = 4
	assert.Equal(t, 6, j.AttemptsOrDefault())
}
