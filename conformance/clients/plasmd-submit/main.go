// Command plasmd-submit maps the conformance suite's client contract
// and its API-client contract (docs/conformance-clients.md) onto `plasmd
// submit --json`, with --bootstrap (PHASE_BOOTSTRAP) or --api (PHASE_API):
// it reads the job from PHASE_* variables, runs plasmd, and prints one
// verdict line.
//
// The plasmd binary is $PLASMD, or plasmd on $PATH.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"time"
)

type verdict struct {
	Verdict  string `json:"verdict"`
	Node     string `json:"node,omitempty"`
	Outcome  string `json:"outcome,omitempty"`
	Stdout   []byte `json:"stdout_base64,omitempty"`
	ExitCode *int64 `json:"exit_code,omitempty"`
	Detail   string `json:"detail,omitempty"`
}

func main() {
	v := run()
	b, _ := json.Marshal(v)
	fmt.Println(string(b))
}

func run() verdict {
	args, deadline, err := submitArgs(os.Getenv)
	if err != nil {
		return verdict{Verdict: "error", Detail: "contract: " + err.Error()}
	}
	bin := os.Getenv("PLASMD")
	if bin == "" {
		bin = "plasmd"
	}
	// plasmd bounds itself with --deadline; this is the backstop.
	ctx, cancel := context.WithTimeout(context.Background(), deadline+5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return verdict{Verdict: "error", Detail: "running plasmd: " + err.Error()}
	}
	return parse(stdout.Bytes(), cmd.ProcessState.ExitCode())
}

// submitArgs builds plasmd's arguments from the contract's variables.
func submitArgs(getenv func(string) string) ([]string, time.Duration, error) {
	atoi := func(name string, def int) (int, error) {
		s := getenv(name)
		if s == "" {
			return def, nil
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return 0, fmt.Errorf("%s=%q is not an integer", name, s)
		}
		return n, nil
	}
	boot, apiAddr, module := getenv("PHASE_BOOTSTRAP"), getenv("PHASE_API"), getenv("PHASE_MODULE")
	if (boot == "") == (apiAddr == "") || module == "" {
		return nil, 0, errors.New("PHASE_MODULE and one of PHASE_BOOTSTRAP, PHASE_API are required")
	}
	tmo, err := atoi("PHASE_TIMEOUT_SECONDS", 30)
	if err != nil {
		return nil, 0, err
	}
	mem, err := atoi("PHASE_MEMORY_MB", 64)
	if err != nil {
		return nil, 0, err
	}
	dl, err := atoi("PHASE_DEADLINE_SECONDS", tmo+60)
	if err != nil {
		return nil, 0, err
	}
	var guest []string
	if s := getenv("PHASE_ARGS"); s != "" {
		if err := json.Unmarshal([]byte(s), &guest); err != nil {
			return nil, 0, fmt.Errorf("PHASE_ARGS is not a JSON array of strings: %w", err)
		}
	}
	deadline := time.Duration(dl) * time.Second
	args := []string{"submit", "--json", "--timeout", strconv.Itoa(tmo),
		"--memory-mb", strconv.Itoa(mem), "--deadline", deadline.String()}
	if boot != "" {
		args = append(args, "--bootstrap", boot)
	} else {
		args = append(args, "--api", apiAddr)
	}
	if s := getenv("PHASE_STDIN"); s != "" {
		args = append(args, "--stdin", s)
	}
	if getenv("PHASE_DETERMINISTIC") == "1" {
		args = append(args, "--deterministic")
	}
	if a := getenv("PHASE_ARCH"); a != "" {
		args = append(args, "--arch", a)
		if getenv("PHASE_REQUIRE_ARCH") == "1" {
			args = append(args, "--require-arch")
		}
	}
	args = append(args, module, "--")
	return append(args, guest...), deadline, nil
}

// parse reads `plasmd submit --json`: a job response when a receipt
// verified, a job error (exit 1) listing the nodes tried otherwise.
func parse(out []byte, code int) verdict {
	var resp struct {
		Outcome  string          `json:"outcome"`
		ExitCode int64           `json:"exit_code"`
		Stdout   []byte          `json:"stdout_base64"`
		Node     string          `json:"node"`
		Receipt  json.RawMessage `json:"receipt"`
		Error    string          `json:"error"`
		Attempts []struct {
			Outcome string `json:"outcome"`
		} `json:"attempts"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(out), &resp); err != nil {
		return verdict{Verdict: "error", Detail: fmt.Sprintf("plasmd exit %d and no JSON result", code)}
	}
	if resp.Error != "" || len(resp.Receipt) == 0 {
		v := verdict{Verdict: "error", Detail: resp.Error}
		// Nodes answered and were refused: a bad receipt, a protocol
		// breach, a stall, an error message.
		if len(resp.Attempts) > 0 {
			v.Verdict = "refused"
		}
		return v
	}
	ec := resp.ExitCode
	return verdict{Verdict: "accepted", Node: resp.Node, Outcome: resp.Outcome, Stdout: resp.Stdout, ExitCode: &ec}
}
