package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/phase-protocol/plasm/node/api"
	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/receipt"
)

const submitAbout = `Runs MODULE.wasm on another node of the network and checks the signed receipt
it returns against the peer that ran it, the job id, the nonce and the bytes received.
The job goes through the local daemon's API (--api, the default) or, with --bootstrap,
through a temporary client node that joins the network itself. Output and exit status are
as for 'plasmd run'; when no node could run the job, plasmd prints one line per node tried
with its reason and exits 1.`

func cmdSubmit(ctx context.Context, env *cmdEnv, args []string) int {
	fs := newFlagSet(env, "submit", "[--api ADDR | --bootstrap MULTIADDR...] [FLAGS] MODULE.wasm [-- ARG...]", submitAbout)
	apiAddr := fs.String("api", "", "the local daemon's API address (default 127.0.0.1:4748 unless --bootstrap is given)")
	tokenFile := fs.String("token-file", "", "the API's bearer token file, sent when it exists (default $PLASMD_API_TOKEN_FILE, else "+api.TokenFile+" in the data directory: $PLASMD_DATA_DIR or ~/.plasmd)")
	var bootstrap stringsFlag
	fs.Var(&bootstrap, "bootstrap", "join the network through this peer instead of a daemon (repeatable)")
	memoryMB := fs.Int("memory-mb", 64, "memory limit in MB")
	timeout := fs.Int("timeout", 30, "time limit in seconds")
	attempts := fs.Int("attempts", 5, "nodes to try at most")
	replicas := fs.Int("replicas", 1, "distinct nodes that must agree on the result")
	stdinFile := fs.String("stdin", "", "file to give the guest as stdin (\"-\" for plasmd's own stdin)")
	receiptFile := fs.String("receipt", "", "write the verified receipt JSON to this file")
	jsonOut := fs.Bool("json", false, "print one JSON object instead of the guest's streams")
	deterministic := fs.Bool("deterministic", false, "fixed clock and seeded random (replicas then agree byte for byte)")
	seed := fs.Int64("seed", 0, "random seed for --deterministic")
	arch := fs.String("arch", "", "preferred node architecture (amd64, arm64, …)")
	requireArch := fs.Bool("require-arch", false, "run only on nodes of --arch")
	deadline := fs.Duration("deadline", 0, "give up after this long overall, whatever the attempts (default: the client's own bound)")
	pos, guestArgs, err := parseArgs(fs, args)
	if err != nil {
		return helpOrUsage(err)
	}
	if len(pos) != 1 {
		errf(env.stderr, "submit: want exactly one MODULE.wasm, got %d arguments (guest arguments go after --)", len(pos))
		return exitUsage
	}
	if *apiAddr != "" && len(bootstrap) > 0 {
		errf(env.stderr, "submit: give --api or --bootstrap, not both")
		return exitUsage
	}
	module, err := os.ReadFile(pos[0])
	if err != nil {
		errf(env.stderr, "submit: reading module: %v", err)
		return exitHarness
	}
	req := api.JobRequest{Module: module, Args: guestArgs, MemoryMB: *memoryMB, TimeoutSeconds: *timeout,
		Attempts: *attempts, Replicas: *replicas, Deterministic: *deterministic, Seed: *seed,
		Arch: *arch, RequireArch: *requireArch}
	if *deadline < 0 {
		errf(env.stderr, "submit: --deadline is negative (%s)", *deadline)
		return exitUsage
	}
	if *stdinFile != "" {
		if req.Stdin, err = readInput(env, *stdinFile); err != nil {
			errf(env.stderr, "submit: reading stdin file: %v", err)
			return exitHarness
		}
	}
	var resp *api.JobResponse
	var jobErr *api.JobError
	if len(bootstrap) > 0 {
		resp, jobErr, err = submitDirect(ctx, bootstrap, req, *deadline)
	} else {
		addr := *apiAddr
		if addr == "" {
			addr = "127.0.0.1:4748"
		}
		var token string
		if token, err = apiToken(*tokenFile); err != nil {
			errf(env.stderr, "submit: %v", err)
			return exitUsage
		}
		if *deadline > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, *deadline)
			defer cancel()
		}
		resp, jobErr, err = submitAPI(ctx, addr, token, req)
	}
	if err != nil {
		errf(env.stderr, "submit: %v", err)
		return exitHarness
	}
	if jobErr != nil {
		if *jsonOut {
			json.NewEncoder(env.stdout).Encode(jobErr)
			return exitFailed
		}
		errf(env.stderr, "submit: %s", firstLine(jobErr.Error))
		for _, a := range jobErr.Attempts {
			fmt.Fprintf(env.stderr, "  %s: %s\n", a.Node, attemptText(a))
		}
		return exitFailed
	}
	if *receiptFile != "" {
		var pretty bytes.Buffer
		json.Indent(&pretty, resp.Receipt, "", "  ")
		if err := os.WriteFile(*receiptFile, append(pretty.Bytes(), '\n'), 0o644); err != nil {
			errf(env.stderr, "submit: writing receipt: %v", err)
			return exitHarness
		}
	}
	status := statusOf(resp.Outcome, resp.ExitCode)
	if *jsonOut {
		enc := json.NewEncoder(env.stdout)
		enc.SetEscapeHTML(false)
		enc.Encode(resp)
		return status
	}
	env.stdout.Write(resp.StdoutBase64)
	env.stderr.Write(resp.StderrBase64)
	if resp.StdoutTruncated {
		errf(env.stderr, "guest stdout truncated by the node")
	}
	if resp.Outcome != phase.OutcomeExited {
		errf(env.stderr, "%s on node %s", resp.Outcome, resp.Node)
	}
	errf(env.stderr, "receipt verified: ran on %s in %.1f ms (%d attempt(s))", resp.Node, resp.WallTimeMS, len(resp.Attempts))
	return status
}

// statusOf maps an outcome name to plasmd's exit status.
func statusOf(outcome string, exitCode int) int {
	switch outcome {
	case phase.OutcomeExited:
		return exitCode & 0xff
	case phase.OutcomeTrapped:
		return exitTrapped
	case phase.OutcomeTimeout:
		return exitTimeout
	case phase.OutcomeMemoryLimit:
		return exitMemoryLimit
	case phase.OutcomeInvalidModule:
		return exitInvalidModule
	case phase.OutcomeHashMismatch:
		return exitHashMismatch
	}
	return exitHarness
}

func attemptText(a api.AttemptInfo) string {
	s := a.Outcome
	if a.Reason != "" {
		s += " " + a.Reason
	}
	if a.Detail != "" {
		s += " (" + firstLine(a.Detail) + ")"
	}
	return s
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// apiToken is the API token plasmd's API commands send: from the file given, else from
// $PLASMD_API_TOKEN_FILE, else from the default data directory's token
// file; "" when that file does not exist. A file named explicitly must
// exist.
func apiToken(flagFile string) (string, error) {
	path := flagFile
	if path == "" {
		path = os.Getenv("PLASMD_API_TOKEN_FILE")
	}
	if path == "" {
		return api.ReadClientToken(filepath.Join(defaultDataDir(), api.TokenFile))
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	return api.ReadClientToken(path)
}

// submitAPI posts the job to a daemon's local API, with the bearer token
// when there is one.
func submitAPI(ctx context.Context, addr, token string, req api.JobRequest) (*api.JobResponse, *api.JobError, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(req.TimeoutSeconds)*time.Duration(max(req.Attempts, 1))*time.Second+time.Minute)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, apiURL(addr)+"/v1/jobs", bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	if token != "" {
		hreq.Header.Set("Authorization", "Bearer "+token)
	}
	hresp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		return nil, nil, fmt.Errorf("no node API at %s (is plasmd start running? see --api, or use --bootstrap): %w", addr, err)
	}
	defer hresp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(hresp.Body, 256<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("reading API response: %w", err)
	}
	switch hresp.StatusCode {
	case http.StatusOK:
		var resp api.JobResponse
		if err := json.Unmarshal(raw, &resp); err != nil {
			return nil, nil, fmt.Errorf("decoding API response: %w", err)
		}
		// Trust, but check: the daemon verified the receipt; check it again
		// here against the node it names, the job sent and the output it
		// carries, so a broken daemon cannot lie (spec-api §6).
		if err := recheck(&resp, req); err != nil {
			return nil, nil, err
		}
		return &resp, nil, nil
	case http.StatusBadGateway:
		var je api.JobError
		if err := json.Unmarshal(raw, &je); err != nil {
			return nil, nil, fmt.Errorf("decoding API error: %w", err)
		}
		return nil, &je, nil
	default:
		var e api.ErrorBody
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return nil, nil, fmt.Errorf("API: %s: %s", hresp.Status, e.Error)
		}
		return nil, nil, fmt.Errorf("API: %s", hresp.Status)
	}
}

// recheck verifies a response's receipt against the node it names, the
// job that was sent and the output it carries (spec-api API-16 to API-25),
// and that the response says what the receipt says.
func recheck(resp *api.JobResponse, req api.JobRequest) error {
	rc, err := receipt.Parse(resp.Receipt)
	if err != nil {
		return fmt.Errorf("receipt from the API: %w", err)
	}
	id, err := peerIDOf(resp.Node)
	if err != nil {
		return fmt.Errorf("node %q from the API: %w", resp.Node, err)
	}
	exp := receipt.Expect{PeerID: id, ModuleHash: phase.HashBytes(req.Module), InputHash: receipt.InputHash(req.Args, req.Stdin),
		Stdout: resp.StdoutBase64, Stderr: resp.StderrBase64, CheckStdout: true, CheckStderr: true}
	if err := receipt.Verify(rc, exp); err != nil {
		return fmt.Errorf("receipt from the API failed verification: %w", err)
	}
	// Check "response" (API-25, API-13).
	var diffs []string
	if resp.Outcome != rc.Outcome {
		diffs = append(diffs, fmt.Sprintf("outcome %s, receipt %s", phase.Quote(resp.Outcome), phase.Quote(rc.Outcome)))
	}
	if resp.ExitCode != rc.ExitCode {
		diffs = append(diffs, fmt.Sprintf("exit_code %d, receipt %d", resp.ExitCode, rc.ExitCode))
	}
	if resp.StdoutTruncated != rc.StdoutTruncated || resp.StderrTruncated != rc.StderrTruncated {
		diffs = append(diffs, fmt.Sprintf("truncated %v/%v, receipt %v/%v", resp.StdoutTruncated, resp.StderrTruncated, rc.StdoutTruncated, rc.StderrTruncated))
	}
	if resp.Stdout != nil && *resp.Stdout != string(resp.StdoutBase64) {
		diffs = append(diffs, "stdout text differs from stdout_base64")
	}
	if resp.Stderr != nil && *resp.Stderr != string(resp.StderrBase64) {
		diffs = append(diffs, "stderr text differs from stderr_base64")
	}
	if len(diffs) > 0 {
		return fmt.Errorf("response from the API failed check response: %s", strings.Join(diffs, "; "))
	}
	return nil
}
