package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/phase-protocol/plasm/node/phase"
	"github.com/phase-protocol/plasm/node/receipt"
)

const verifyAbout = `Checks a receipt's signature and, when given, the signer and the job facts.
Prints "valid" and exits 0 when every check passes; prints the failed check and exits 1
otherwise (2 on a usage error). Without --peer or --pubkey the receipt is only checked to be
self-consistent (signed by the key it names), and plasmd says so. Legacy v0.1 receipts
are verified only against --pubkey and never prove a run.`

func cmdVerify(ctx context.Context, env *cmdEnv, args []string) int {
	fs := newFlagSet(env, "verify", "[--peer PEER_ID | --pubkey HEX] [FLAGS] RECEIPT.json", verifyAbout)
	peerFlag := fs.String("peer", "", "expected signer: the peer ID of the node that ran the job")
	pubFlag := fs.String("pubkey", "", "expected signer: pinned Ed25519 public key, 64 hex chars")
	stdoutFile := fs.String("stdout", "", "file holding the stdout received; its hash must match")
	stderrFile := fs.String("stderr", "", "file holding the stderr received; its hash must match")
	jobID := fs.String("job-id", "", "expected job id")
	nonce := fs.String("nonce", "", "expected nonce")
	moduleFile := fs.String("module", "", "module file; its hash must match the receipt's module_hash")
	pos, _, err := parseArgs(fs, args)
	if err != nil {
		return helpOrUsage(err)
	}
	if len(pos) != 1 {
		errf(env.stderr, "verify: want exactly one RECEIPT.json, got %d arguments", len(pos))
		return exitUsage
	}
	if *peerFlag != "" && *pubFlag != "" {
		errf(env.stderr, "verify: give --peer or --pubkey, not both")
		return exitUsage
	}
	data, err := os.ReadFile(pos[0])
	if err != nil {
		errf(env.stderr, "verify: reading receipt: %v", err)
		return exitFailed
	}
	var exp receipt.Expect
	if *peerFlag != "" {
		if exp.PeerID, err = peer.Decode(*peerFlag); err != nil {
			errf(env.stderr, "verify: --peer %q is not a peer ID: %v", *peerFlag, err)
			return exitUsage
		}
	}
	if *pubFlag != "" {
		if exp.PublicKey, err = parsePubkey(*pubFlag); err != nil {
			errf(env.stderr, "verify: --pubkey: %v", err)
			return exitUsage
		}
	}
	exp.JobID, exp.Nonce = *jobID, *nonce
	for _, f := range []struct {
		path  string
		dst   *[]byte
		check *bool
	}{{*stdoutFile, &exp.Stdout, &exp.CheckStdout}, {*stderrFile, &exp.Stderr, &exp.CheckStderr}} {
		if f.path == "" {
			continue
		}
		if *f.dst, err = os.ReadFile(f.path); err != nil {
			errf(env.stderr, "verify: %v", err)
			return exitFailed
		}
		*f.check = true
	}
	if *moduleFile != "" {
		m, err := os.ReadFile(*moduleFile)
		if err != nil {
			errf(env.stderr, "verify: %v", err)
			return exitFailed
		}
		exp.ModuleHash = phase.HashBytes(m)
	}

	version, err := receipt.Sniff(data)
	if err != nil {
		fmt.Fprintf(env.stdout, "invalid: format: %v\n", err)
		return exitFailed
	}
	if version != receipt.Version {
		return verifyLegacy(env, data, exp)
	}
	rc, err := receipt.Parse(data)
	if err == nil {
		err = receipt.Verify(rc, exp)
	}
	if err != nil {
		fmt.Fprintf(env.stdout, "invalid: %v\n", checkText(err))
		return exitFailed
	}
	if receipt.SelfConsistent(exp) {
		fmt.Fprintf(env.stdout, "valid (self-consistent only: signed by the key it names, %s; pass --peer or --pubkey to check who ran it)\n", rc.NodePeerID)
		return exitOK
	}
	fmt.Fprintf(env.stdout, "valid: job %s ran on %s, outcome %s, exit code %d\n", rc.JobID, rc.NodePeerID, rc.Outcome, rc.ExitCode)
	return exitOK
}

func verifyLegacy(env *cmdEnv, data []byte, exp receipt.Expect) int {
	if exp.PublicKey == nil {
		fmt.Fprintln(env.stdout, "invalid: signer: a legacy v0.1 receipt can only be verified against a pinned key (--pubkey)")
		return exitFailed
	}
	var lr receipt.LegacyReceipt
	if err := json.Unmarshal(data, &lr); err != nil {
		fmt.Fprintf(env.stdout, "invalid: format: %v\n", err)
		return exitFailed
	}
	if err := receipt.VerifyLegacy(lr, exp.PublicKey); err != nil {
		fmt.Fprintf(env.stdout, "invalid: %v\n", checkText(err))
		return exitFailed
	}
	fmt.Fprintln(env.stdout, "valid (legacy v0.1: signature only; binds no job, output or peer)")
	return exitOK
}

func checkText(err error) string {
	var ce *receipt.CheckError
	if errors.As(err, &ce) {
		return ce.Error()
	}
	return "format: " + err.Error()
}

func parsePubkey(s string) (ed25519.PublicKey, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not hex: %w", err)
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("want %d bytes (%d hex chars), got %d bytes", ed25519.PublicKeySize, 2*ed25519.PublicKeySize, len(b))
	}
	return ed25519.PublicKey(b), nil
}
