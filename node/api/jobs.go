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
	"time"
	"unicode/utf8"

	"github.com/phase-protocol/plasm/node/client"
	"github.com/phase-protocol/plasm/node/metrics"
	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/strictjson"
)

// MaxJobRequestBytes caps a POST /v1/jobs body (module and stdin travel
// base64-encoded inside it).
const MaxJobRequestBytes = 128 << 20

// JobRequest is the body of POST /v1/jobs.
type JobRequest struct {
	Module         Base64   `json:"module"`
	Args           []string `json:"args,omitempty"`
	Stdin          Base64   `json:"stdin,omitempty"`
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
	Detail          string          `json:"detail,omitempty"` // the node's note on the outcome (a trap message)
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
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxJobRequestBytes))
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("job request: body over %d bytes or unreadable: %w", MaxJobRequestBytes, err))
			return
		}
		req, err := ParseJobRequest(body)
		if err != nil {
			writeError(w, http.StatusBadRequest, err)
			return
		}
		start := time.Now()
		res, err := s.Run(r.Context(), req.Job(), client.Options{})
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
	resp := JobResponse{Outcome: res.Outcome, ExitCode: res.ExitCode, Detail: res.Detail, StdoutBase64: nonNil(res.Stdout), StderrBase64: nonNil(res.Stderr),
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

// jobRequestNames are the members of a job request (spec-api §4.1).
var jobRequestNames = []string{"module", "args", "stdin", "memory_mb", "timeout_seconds", "cpu_cores", "arch",
	"require_arch", "attempts", "replicas", "deterministic", "seed"}

// ParseJobRequest reads a POST /v1/jobs body strictly (node/strictjson): one
// object, no duplicate, unknown, differently-cased or null members,
// integers without fraction, base64 where the table says so (API-10).
func ParseJobRequest(body []byte) (JobRequest, error) {
	fail := func(err error) (JobRequest, error) {
		var fe *strictjson.FieldError
		if errors.As(err, &fe) {
			return JobRequest{}, fmt.Errorf("job request: %s: %s", fe.Path, fe.Msg)
		}
		return JobRequest{}, fmt.Errorf("job request: %w", err)
	}
	f, err := strictjson.ParseObject(body)
	if err != nil {
		return fail(err)
	}
	f.Only(jobRequestNames...)
	const lim = phase.MaxSafeInteger
	req := JobRequest{
		Args:           f.Strings("args", false, phase.MaxArgs),
		MemoryMB:       int(f.Int("memory_mb", false, -lim, lim)),
		TimeoutSeconds: int(f.Int("timeout_seconds", false, -lim, lim)),
		CPUCores:       int(f.Int("cpu_cores", false, -lim, lim)),
		Arch:           f.String("arch", false),
		RequireArch:    f.Bool("require_arch", false),
		Attempts:       int(f.Int("attempts", false, -lim, lim)),
		Replicas:       int(f.Int("replicas", false, -lim, lim)),
		Deterministic:  f.Bool("deterministic", false),
		Seed:           f.Int64("seed", false),
	}
	for _, b := range []struct {
		name string
		into *Base64
	}{{"module", &req.Module}, {"stdin", &req.Stdin}} {
		s := f.String(b.name, false)
		v, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			f.Fail(b.name, "not standard base64 (%v)", err)
		}
		*b.into = v
	}
	if err := f.Err(); err != nil {
		return fail(err)
	}
	if err := req.Validate(); err != nil {
		return fail(err)
	}
	return req, nil
}

// Job converts a request to the job every front end shares.
func (r JobRequest) Job() client.Job {
	return client.Job{Module: r.Module, Args: r.Args, Stdin: r.Stdin, MemoryMB: r.MemoryMB,
		TimeoutSeconds: r.TimeoutSeconds, CPUCores: r.CPUCores, Arch: r.Arch, RequireArch: r.RequireArch,
		Deterministic: r.Deterministic, Seed: r.Seed, Attempts: r.Attempts, Replicas: r.Replicas}
}

// Validate checks the request with phase.Job.Validate, the one set of
// rules and wordings every front end uses; the error names the member
// (API-10).
func (r JobRequest) Validate() error {
	j := r.Job()
	return j.Validate()
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
