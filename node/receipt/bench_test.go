package receipt

import (
	"crypto/ed25519"
	"encoding/hex"
	"testing"
)

func BenchmarkSign(b *testing.B) {
	f := newFixture(b)
	priv := f.node.Ed25519()
	r := *f.receipt
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Sign(priv); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify is a client's full check: signer from the dialled peer ID,
// signature, and every job fact including the output hashes.
func BenchmarkVerify(b *testing.B) {
	f := newFixture(b)
	exp := f.expect()
	b.ReportAllocs()
	for b.Loop() {
		if err := Verify(f.receipt, exp); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	f := newFixture(b)
	data := marshal(b, f.receipt)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

// Baselines: bare Ed25519 over the same signing bytes, to tell our overhead
// from the curve arithmetic on a given machine.
func BenchmarkEd25519SignBaseline(b *testing.B) {
	f := newFixture(b)
	msg, err := f.receipt.SigningBytes()
	if err != nil {
		b.Fatal(err)
	}
	priv := f.node.Ed25519()
	for b.Loop() {
		ed25519.Sign(priv, msg)
	}
}

func BenchmarkEd25519VerifyBaseline(b *testing.B) {
	f := newFixture(b)
	msg, err := f.receipt.SigningBytes()
	if err != nil {
		b.Fatal(err)
	}
	sig, err := hex.DecodeString(f.receipt.Signature)
	if err != nil {
		b.Fatal(err)
	}
	pub := f.node.PublicKey()
	for b.Loop() {
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("signature does not verify")
		}
	}
}
