package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/phase-protocol/plasm/node/client"
	"github.com/phase-protocol/plasm/node/metrics"
	"github.com/phase-protocol/plasm/node/wire"
)

// MaxJobRequestBytes caps a POST /v1/jobs body (module and stdin travel
// base64-encoded inside it).
const MaxJobRequestBytes = 128 << 20

// JobRequest is the body of POST /v1/jobs.
type JobRequest struct {
	Module         Base64   `json:"module"`
	Args           []string `json:"args"`
	Stdin          Base64   `json:"stdin"`
	MemoryMB       int      `json:"memory_mb"`
	TimeoutSeconds int      `json:"timeout_seconds"`
	CPUCores       int      `json:"cpu_cores"`
	Arch           string   `json:"arch"`
	RequireArch    bool     `json:"require_arch"`
	Attempts       int      `json:"attempts"`
	Replicas       int      `json:"replicas"`
	Deterministic  bool     `json:"deterministic"`
	Seed           int64    `json:"seed"`
}

// Base64 is bytes that travel as a standard base64 string; a bad string
// is an error that names its field.
type Base64 []byte

func (b *Base64) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return &json.UnmarshalTypeError{Value: "non-string", Type: reflect.TypeFor[Base64]()}
	}
	v, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return &json.UnmarshalTypeError{Value: "string that is not standard base64 (" + err.Error() + ")", Type: reflect.TypeFor[Base64]()}
	}
	*b = v
	return nil
}

// AttemptInfo is one node tried for a job.
type AttemptInfo struct {
	Node       string  `json:"node"`
	Outcome    string  `json:"outcome"`
	Reason     string  `json:"reason,omitempty"`
	Detail     string  `json:"detail,omitempty"`
	DurationMS float64 `json:"duration_ms"`
}

// JobResponse is the body of a successful POST /v1/jobs: the job ran on
// Node and its receipt was verified against Node's key by this node.
type JobResponse struct {
	Outcome         string          `json:"outcome"`
	ExitCode        int             `json:"exit_code"`
	Stdout          *string         `json:"stdout,omitempty"` // present when valid UTF-8
	StdoutBase64    []byte          `json:"stdout_base64"`
	Stderr          *string         `json:"stderr,omitempty"`
	StderrBase64    []byte          `json:"stderr_base64"`
	StdoutTruncated bool            `json:"stdout_truncated"`
	StderrTruncated bool            `json:"stderr_truncated"`
	Node            string          `json:"node"`
	WallTimeMS      float64         `json:"wall_time_ms"`
	Attempts        []AttemptInfo   `json:"attempts"`
	Replicas        []string        `json:"replicas,omitempty"`
	Receipt         json.RawMessage `json:"receipt"`
}

// JobError is the body of a failed POST /v1/jobs.
type JobError struct {
	Error    string        `json:"error"`
	Attempts []AttemptInfo `json:"attempts"`
}

// Submitter runs a job on the network (a client.Client in production).
type Submitter interface {
	Run(ctx context.Context, job client.Job, opts client.Options) (*client.Result, error)
}

// JobsHandler serves POST /v1/jobs through s.
func JobsHandler(s Submitter, m *metrics.Metrics, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req JobRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxJobRequestBytes))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("job request: %w", err))
			return
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			writeError(w, http.StatusBadRequest, errors.New("job request: trailing data after the JSON object"))
			return
		}
		if err := req.Validate(); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("job request: %w", err))
			return
		}
		job, opts := req.Job()
		start := time.Now()
		res, err := s.Run(r.Context(), job, opts)
		if err != nil {
			m.ClientJobs.WithLabelValues("failed").Inc()
			log.Warn("job failed", "event", "api_job_failed", "error", err.Error(), "seconds", time.Since(start).Seconds())
			writeJSON(w, http.StatusBadGateway, Failure(err))
			return
		}
		m.ClientJobs.WithLabelValues("ok").Inc()
		resp := Response(res)
		writeJSON(w, http.StatusOK, resp)
	})
}

// Response converts a client result to the API's response body.
func Response(res *client.Result) JobResponse {
	// Empty output is "" in JSON, never null.
	resp := JobResponse{Outcome: res.Outcome, ExitCode: res.ExitCode, StdoutBase64: nonNil(res.Stdout), StderrBase64: nonNil(res.Stderr),
		StdoutTruncated: res.StdoutTruncated, StderrTruncated: res.StderrTruncated, Node: res.Node.String(),
		WallTimeMS: float64(res.WallTime.Microseconds()) / 1000, Attempts: attemptInfos(res.Attempts), Receipt: res.ReceiptJSON}
	if utf8.Valid(res.Stdout) {
		s := string(res.Stdout)
		resp.Stdout = &s
	}
	if utf8.Valid(res.Stderr) {
		s := string(res.Stderr)
		resp.Stderr = &s
	}
	for _, rp := range res.Replicas {
		resp.Replicas = append(resp.Replicas, rp.Node.String())
	}
	return resp
}

// Failure converts a client error to the API's error body.
func Failure(err error) JobError {
	body := JobError{Error: err.Error()}
	var ce *client.Error
	if errors.As(err, &ce) {
		body.Attempts = attemptInfos(ce.Attempts)
	}
	return body
}

// Job converts a request to a client job and options.
func (r JobRequest) Job() (client.Job, client.Options) {
	return client.Job{Module: r.Module, Args: r.Args, Stdin: r.Stdin, MemoryMB: r.MemoryMB,
			TimeoutSeconds: r.TimeoutSeconds, CPUCores: r.CPUCores, Arch: r.Arch, RequireArch: r.RequireArch,
			Deterministic: r.Deterministic, Seed: r.Seed},
		client.Options{Attempts: r.Attempts, Replicas: r.Replicas}
}

// Validate checks a request's ranges; the error names the field.
func (r JobRequest) Validate() error {
	switch {
	case len(r.Module) == 0:
		return errors.New("module: missing or empty (base64 of the .wasm bytes)")
	case r.MemoryMB < 0 || r.MemoryMB > 32768:
		return fmt.Errorf("memory_mb: %d out of range 0–32768 (0: default)", r.MemoryMB)
	case r.TimeoutSeconds < 0 || r.TimeoutSeconds > 3600:
		return fmt.Errorf("timeout_seconds: %d out of range 0–3600 (0: default)", r.TimeoutSeconds)
	case r.CPUCores < 0 || r.CPUCores > 64:
		return fmt.Errorf("cpu_cores: %d out of range 0–64 (0: default)", r.CPUCores)
	case r.Attempts < 0 || r.Attempts > 100:
		return fmt.Errorf("attempts: %d out of range 0–100 (0: default)", r.Attempts)
	case r.Replicas < 0 || r.Replicas > 16:
		return fmt.Errorf("replicas: %d out of range 0–16 (0: one)", r.Replicas)
	case len(r.Args) > 1024:
		return fmt.Errorf("args: %d arguments, at most 1024", len(r.Args))
	case r.Seed != 0 && !r.Deterministic:
		return errors.New("seed: only meaningful with deterministic: true")
	case r.RequireArch && r.Arch == "":
		return errors.New("require_arch: needs arch")
	case r.Attempts > 0 && r.Attempts < max(r.Replicas, 1):
		return fmt.Errorf("attempts: %d is fewer than replicas %d", r.Attempts, r.Replicas)
	}
	if r.Arch != "" {
		if _, err := wire.NormalizeArch(r.Arch); err != nil {
			return fmt.Errorf("arch: %w", err)
		}
	}
	for i, a := range r.Args {
		if strings.IndexByte(a, 0) >= 0 {
			return fmt.Errorf("args[%d]: contains a NUL byte", i)
		}
	}
	return nil
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func attemptInfos(as []client.Attempt) []AttemptInfo {
	out := make([]AttemptInfo, 0, len(as))
	for _, a := range as {
		out = append(out, AttemptInfo{Node: a.Node.String(), Outcome: a.Outcome, Reason: a.Reason, Detail: a.Detail,
			DurationMS: float64(a.Duration.Microseconds()) / 1000})
	}
	return out
}
