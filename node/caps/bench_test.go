package caps

import (
	"testing"
)

func BenchmarkSign(b *testing.B) {
	priv, id := testKey(b, 1)
	r := baseRecord(id)
	for b.Loop() {
		r.Signature = ""
		if err := r.Sign(priv); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	r, _, _ := signedRecord(b, 1, nil)
	data := mustMarshal(b, r)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidate is the per-record cost a DHT server pays on every PUT.
func BenchmarkValidate(b *testing.B) {
	r, _, id := signedRecord(b, 1, nil)
	data := mustMarshal(b, r)
	v := Validator{Now: fixedNow(testNow)}
	key := Key(id)
	for b.Loop() {
		if err := v.Validate(key, data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRank100(b *testing.B) {
	recs := make([]*Record, 100)
	for i := range recs {
		_, id := testKey(b, byte(i))
		r := baseRecord(id)
		r.Load.RunningJobs = i % 9
		r.MemoryMB = 1024 * (1 + i%5)
		recs[i] = &r
	}
	req := Requirements{MinMemoryMB: 512, Arch: "amd64"}
	for b.Loop() {
		if len(Rank(recs, req)) != 100 {
			b.Fatal("rank dropped records")
		}
	}
}
