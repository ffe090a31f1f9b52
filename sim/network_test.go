package sim

import (
	"testing"
	"time"
)

func TestOnTick(t *testing.T) {
	base := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		now  time.Time
		d    time.Duration
		tick time.Duration
		want time.Duration
	}{
		{"no tick keeps the delay", base.Add(300 * time.Microsecond), 50*time.Millisecond + 123, 0, 50*time.Millisecond + 123},
		{"already on the grid", base, 50 * time.Millisecond, time.Millisecond, 50 * time.Millisecond},
		{"rounds the arrival up", base, 50*time.Millisecond + 1, time.Millisecond, 51 * time.Millisecond},
		{"counts from now, not from zero", base.Add(300 * time.Microsecond), 50 * time.Millisecond, time.Millisecond, 50*time.Millisecond + 700*time.Microsecond},
		{"zero delay lands on the next step", base.Add(time.Nanosecond), 0, time.Millisecond, time.Millisecond - time.Nanosecond},
		{"coarser grid", base.Add(2 * time.Millisecond), 41 * time.Millisecond, 5 * time.Millisecond, 43 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := onTick(tt.now, tt.d, tt.tick)
			if got != tt.want {
				t.Fatalf("onTick(%v, %v, %v) = %v, want %v", tt.now.Format(time.StampNano), tt.d, tt.tick, got, tt.want)
			}
			if tt.tick > 0 && tt.now.Add(got).UnixNano()%int64(tt.tick) != 0 {
				t.Fatalf("arrival %v is off the %v grid", tt.now.Add(got), tt.tick)
			}
			if got < tt.d || got >= tt.d+max(tt.tick, 1) {
				t.Fatalf("delay %v outside [%v, %v)", got, tt.d, tt.d+tt.tick)
			}
		})
	}
}
