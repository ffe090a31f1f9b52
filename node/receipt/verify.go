package receipt

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/phase-protocol/plasm/node/identity"
	"github.com/phase-protocol/plasm/node/phase"
)

// Check names, in the order Verify runs them.
const (
	CheckFormat     = "format"
	CheckSigner     = "signer"
	CheckSignature  = "signature"
	CheckJobID      = "job_id"
	CheckNonce      = "nonce"
	CheckRequester  = "requester"
	CheckModuleHash = "module_hash"
	CheckInputHash  = "input_hash"
	CheckStdoutHash = "stdout_hash"
	CheckStderrHash = "stderr_hash"
)

// CheckError says which check a receipt failed and why.
type CheckError struct {
	Check  string // one of the Check* constants
	Detail string
}

func (e *CheckError) Error() string {
	return fmt.Sprintf("receipt: %s check failed: %s", e.Check, e.Detail)
}

// Expect is what the verifier knows independently of the receipt.
type Expect struct {
	// PeerID is the peer the verifier actually talked to (preferred): the
	// receipt must be signed by its key. PublicKey is a pinned key instead
	// (or as well, in which case both must agree). With neither, the receipt
	// is only checked to be self-consistent, which proves nothing about who
	// ran the job.
	PeerID    peer.ID
	PublicKey ed25519.PublicKey

	// Job facts, each checked when non-empty.
	JobID, Nonce, Requester, ModuleHash, InputHash string

	// The output bytes received; hashed and compared when the Check flag is set.
	Stdout, Stderr           []byte
	CheckStdout, CheckStderr bool
}

// SelfConsistent reports whether exp names no expected signer, so that
// Verify can only check the receipt against its own claimed key.
func SelfConsistent(exp Expect) bool {
	return exp.PeerID == "" && len(exp.PublicKey) == 0
}

// Verify checks r against exp, in order: format, signer, signature, then
// job_id, nonce, requester, module_hash, input_hash, stdout_hash and
// stderr_hash. The first failure is returned as a *CheckError.
//
// The signer is exp.PeerID's key, else exp.PublicKey; the receipt's
// node_pubkey and node_peer_id must both be that key's. With neither given
// (see SelfConsistent) the signer is the receipt's own node_pubkey and only
// node_peer_id is checked against it.
func Verify(r *Receipt, exp Expect) error {
	if r == nil {
		return &CheckError{Check: CheckFormat, Detail: "nil receipt"}
	}
	if problems := r.formatProblems(true); len(problems) > 0 {
		return formatErr("%s", joinProblems(problems))
	}
	key, err := expectedSigner(r, exp)
	if err != nil {
		return err
	}
	if want := hex.EncodeToString(key); r.NodePubkey != want {
		return &CheckError{Check: CheckSigner, Detail: fmt.Sprintf("node_pubkey %s is not the expected signer's key %s", r.NodePubkey, want)}
	}
	// node_peer_id is format-checked (canonical, Ed25519), so comparing
	// its embedded key is comparing the peer ID.
	nodeID, err := peer.Decode(r.NodePeerID)
	if err != nil {
		return &CheckError{Check: CheckSigner, Detail: fmt.Sprintf("node_peer_id: %v", err)}
	}
	if claimed, err := identity.PublicKeyFromPeerID(nodeID); err != nil || !bytes.Equal(claimed, key) {
		wantID, _ := identity.PeerIDFromPublicKey(key)
		return &CheckError{Check: CheckSigner, Detail: fmt.Sprintf("node_peer_id %s is not the expected signer %s", r.NodePeerID, wantID)}
	}

	sig, err := hex.DecodeString(r.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return &CheckError{Check: CheckSignature, Detail: "signature is not 64 bytes of hex"}
	}
	msg, err := r.SigningBytes()
	if err != nil {
		return &CheckError{Check: CheckSignature, Detail: err.Error()}
	}
	if !ed25519.Verify(key, msg, sig) {
		return &CheckError{Check: CheckSignature, Detail: "Ed25519 signature does not verify for node_pubkey " + r.NodePubkey}
	}

	for _, f := range []struct {
		check, want, got string
	}{
		{CheckJobID, exp.JobID, r.JobID},
		{CheckNonce, exp.Nonce, r.Nonce},
		{CheckRequester, exp.Requester, r.Requester},
		{CheckModuleHash, exp.ModuleHash, r.ModuleHash},
		{CheckInputHash, exp.InputHash, r.InputHash},
	} {
		if f.want != "" && f.want != f.got {
			return &CheckError{Check: f.check, Detail: fmt.Sprintf("receipt has %s, expected %s", phase.Quote(f.got), phase.Quote(f.want))}
		}
	}
	if exp.CheckStdout {
		if got := phase.HashBytes(exp.Stdout); got != r.StdoutHash {
			return &CheckError{Check: CheckStdoutHash, Detail: fmt.Sprintf("receipt has %s, the %d stdout bytes received hash to %s", r.StdoutHash, len(exp.Stdout), got)}
		}
	}
	if exp.CheckStderr {
		if got := phase.HashBytes(exp.Stderr); got != r.StderrHash {
			return &CheckError{Check: CheckStderrHash, Detail: fmt.Sprintf("receipt has %s, the %d stderr bytes received hash to %s", r.StderrHash, len(exp.Stderr), got)}
		}
	}
	return nil
}

func expectedSigner(r *Receipt, exp Expect) (ed25519.PublicKey, error) {
	signerErr := func(format string, args ...any) error {
		return &CheckError{Check: CheckSigner, Detail: fmt.Sprintf(format, args...)}
	}
	switch {
	case exp.PeerID != "":
		key, err := identity.PublicKeyFromPeerID(exp.PeerID)
		if err != nil {
			return nil, signerErr("expected peer: %v", err)
		}
		if len(exp.PublicKey) != 0 && !bytes.Equal(exp.PublicKey, key) {
			return nil, signerErr("expected peer %s and pinned key %x disagree", exp.PeerID, []byte(exp.PublicKey))
		}
		return key, nil
	case len(exp.PublicKey) != 0:
		if len(exp.PublicKey) != ed25519.PublicKeySize {
			return nil, signerErr("pinned key must be %d bytes, got %d", ed25519.PublicKeySize, len(exp.PublicKey))
		}
		return exp.PublicKey, nil
	default:
		key, err := hex.DecodeString(r.NodePubkey)
		if err != nil || len(key) != ed25519.PublicKeySize {
			return nil, signerErr("node_pubkey is not a 32-byte hex key")
		}
		return key, nil
	}
}
