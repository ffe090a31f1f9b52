package conformance

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/conformance/spec"
)

// buildTool builds a Go main package (dir relative to this module) into
// bin and returns its path.
func buildTool(t *testing.T, bin, modDir, pkg, name string) string {
	t.Helper()
	out := filepath.Join(bin, name)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = modDir
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build %s: %s", pkg, b)
	return out
}

// runClientSide runs the client cases against cmd and returns the report.
func runClientSide(t *testing.T, cmd string, opts Options) *Report {
	return runSide(t, cmd, SideClient, opts)
}

// runSide runs one side's cases against a client command.
func runSide(t *testing.T, cmd string, side Side, opts Options) *Report {
	t.Helper()
	s, err := New()
	require.NoError(t, err)
	if testing.Verbose() {
		opts.Progress = os.Stderr
	}
	env := ForClient(cmd, t.TempDir())
	defer env.Close()
	return s.Run(context.Background(), env, side, opts)
}

// requireAllPass fails t for every case that failed; a SHOULD
// requirement's failure is reported, not fatal.
func requireAllPass(t *testing.T, rep *Report) {
	t.Helper()
	require.NotEmpty(t, rep.Cases)
	for _, q := range rep.Requirements {
		if q.Verdict == Informational {
			t.Logf("informational: %s %s (%v)", q.ID, q.Level, q.Cases)
		}
	}
	for _, c := range rep.Cases {
		if c.Verdict != Pass && c.Verdict != NotApplicable && !onlyShould(rep, c) {
			t.Errorf("%s %v: %s: %s\n%s", c.Name, c.Reqs, c.Verdict, c.Message, transcriptText(c.Transcript))
		}
	}
	t.Log(summaryLine(rep))
}

// onlyShould: every requirement the case checks is a SHOULD or MAY.
func onlyShould(rep *Report, c CaseResult) bool {
	for _, q := range rep.Requirements {
		if slices.Contains(c.Reqs, q.ID) && q.Level == spec.Must {
			return false
		}
	}
	return true
}

// shortClient is the representative subset of client cases for -short:
// one of each kind, and no stall but the first (each stall holds the
// client to its deadline).
var shortClient = regexp.MustCompile(`^client/(honest/(echo|exit-code-and-stderr|have-module)|retry/forged-then-honest|` +
	`receipt/(forged-signature|foreign-signer|replayed-nonce|wrong-input-hash|wrong-output|unknown-member|duplicate-member)|` +
	`result/hash-mismatch-outcome|frame/(oversized-result|stdout-size-lie)|stall/offer|caps/(bad-signature|expired))$`)

// plasmd submit against both client sides, through its adapter: every
// case passes (a SHOULD may be informational). With -short the p2p side
// runs without the stall and close cases, which each hold the client to its
// deadline.
func TestClientPlasmdSubmit(t *testing.T) {
	t.Parallel()
	bin := t.TempDir()
	plasmd := buildTool(t, bin, "..", "./cmd/plasmd", "plasmd")
	adapter := buildTool(t, bin, ".", "./clients/plasmd-submit", "plasmd-submit")
	cmd := "PLASMD=" + plasmd + " " + adapter
	t.Run("p2p", func(t *testing.T) {
		t.Parallel()
		opts := Options{Parallel: 4}
		if testing.Short() {
			opts.Run = shortClient
		}
		requireAllPass(t, runClientSide(t, cmd, opts))
	})
	t.Run("api", func(t *testing.T) {
		t.Parallel()
		opts := Options{Parallel: 4}
		if testing.Short() {
			opts.Run = regexp.MustCompile(`^api-client/(honest/echo|receipt/(forged-signature|wrong-module-hash)|output/text-differs|status/404-plain-text)$`)
		}
		requireAllPass(t, runSide(t, cmd, SideAPIClient, opts))
	})
}

// The client cases bite: the reference client (clients/mutant with no
// variant) passes them, and each broken variant fails the requirement it
// breaks.
func TestClientMutantsBite(t *testing.T) {
	t.Parallel()
	bin := t.TempDir()
	mutant := buildTool(t, bin, ".", "./clients/mutant", "mutant")
	t.Run("reference", func(t *testing.T) {
		t.Parallel()
		opts := Options{Parallel: 4}
		if testing.Short() {
			opts.Run = shortClient
		}
		rep := runClientSide(t, mutant, opts)
		for _, c := range rep.Cases {
			if c.Verdict != Pass {
				t.Errorf("%s %v: %s: %s\n%s", c.Name, c.Reqs, c.Verdict, c.Message, transcriptText(c.Transcript))
			}
		}
		t.Log(summaryLine(rep))
	})
	for _, m := range []struct {
		variant, cases string
		breaks         []string
	}{
		{"accept-all", `receipt/(forged-signature|wrong-output)|caps/bad-signature`, []string{"RCPT-6", "RCPT-9", "CAP-5"}},
		{"skip-format", `receipt/(unknown-member|timestamp|legacy)`, []string{"RCPT-4", "RCPT-2", "LEG-2"}},
		{"skip-signer", `receipt/(foreign-signer|pubkey-not-the-peer)`, []string{"RCPT-5"}},
		{"skip-signature", `receipt/(forged-signature|altered-after-signing)`, []string{"RCPT-6"}},
		{"skip-job", `receipt/(replayed-nonce|other-job-id|other-requester)`, []string{"RCPT-7"}},
		{"skip-hashes", `receipt/wrong-(module|input)-hash`, []string{"RCPT-8"}},
		{"skip-output", `receipt/wrong-(output|stdout-hash|stderr)`, []string{"RCPT-9"}},
		{"trust-records", `caps/(bad-signature|expired|foreign-peer-id)`, []string{"CAP-5", "CAP-1", "CAP-2", "CAPS-4"}},
		{"lax-frames", `frame/oversized-result|result/stdout-over-accepted-cap`, []string{"WIRE-8", "JOB-10"}},
		{"no-deadline", `stall/payload$`, []string{"JOB-14"}},
	} {
		t.Run(m.variant, func(t *testing.T) {
			if testing.Short() && m.variant == "no-deadline" {
				t.Skip("-short: holds a client for its deadline and grace (25 s)")
			}
			t.Parallel()
			rep := runClientSide(t, "PHASE_MUTANT="+m.variant+" "+mutant, Options{Parallel: 2, Run: regexp.MustCompile(`^client/(` + m.cases + `)`)})
			require.NotEmpty(t, rep.Cases, "no case matched")
			failed := rep.Failed()
			for _, id := range m.breaks {
				assert.Contains(t, failed, id, "mutant %s survives %s", m.variant, id)
			}
			t.Logf("%s: fails %v", m.variant, failed)
		})
	}
}
