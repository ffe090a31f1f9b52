package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/phase-protocol/plasm/node/api"
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
		Attempts: *attempts, Replicas: *replicas, Deterministic: *deterministic, Seed: *seed}
	if *stdinFile != "" {
		if req.Stdin, err = readInput(env, *stdinFile); err != nil {
			errf(env.stderr, "submit: reading stdin file: %v", err)
			return exitHarness
		}
	}
	var resp *api.JobResponse
	var jobErr *api.JobError
	if len(bootstrap) > 0 {
		resp, jobErr, err = submitDirect(ctx, bootstrap, req)
	} else {
		addr := *apiAddr
		if addr == "" {
			addr = "127.0.0.1:4748"
		}
		resp, jobErr, err = submitAPI(ctx, addr, req)
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
	if resp.Outcome != "exited" {
		errf(env.stderr, "%s on node %s", resp.Outcome, resp.Node)
	}
	errf(env.stderr, "receipt verified: ran on %s in %.1f ms (%d attempt(s))", resp.Node, resp.WallTimeMS, len(resp.Attempts))
	return status
}

// statusOf maps an outcome name to plasmd's exit status.
func statusOf(outcome string, exitCode int) int {
	switch outcome {
	case "exited":
		return exitCode & 0xff
	case "trapped":
		return exitTrapped
	case "timeout":
		return exitTimeout
	case "memory_limit":
		return exitMemoryLimit
	case "invalid_module":
		return exitInvalidModule
	case "hash_mismatch":
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

// submitAPI posts the job to a daemon's local API.
func submitAPI(ctx context.Context, addr string, req api.JobRequest) (*api.JobResponse, *api.JobError, error) {
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
		// here against the node it names so a broken daemon cannot lie.
		if err := recheck(&resp); err != nil {
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

// recheck verifies a response's receipt against the node it names and the
// output it carries.
func recheck(resp *api.JobResponse) error {
	rc, err := receipt.Parse(resp.Receipt)
	if err != nil {
		return fmt.Errorf("receipt from the API: %w", err)
	}
	id, err := peerIDOf(resp.Node)
	if err != nil {
		return fmt.Errorf("node %q from the API: %w", resp.Node, err)
	}
	exp := receipt.Expect{PeerID: id, Stdout: resp.StdoutBase64, Stderr: resp.StderrBase64, CheckStdout: true, CheckStderr: true}
	if err := receipt.Verify(rc, exp); err != nil {
		return fmt.Errorf("receipt from the API failed verification: %w", err)
	}
	return nil
}
