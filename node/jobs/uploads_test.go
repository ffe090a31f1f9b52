package jobs

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/phase-protocol/plasm/internal/testwasm"
	"github.com/phase-protocol/plasm/node/config"
	"github.com/phase-protocol/plasm/node/wire"
)

// sendPartial sends the payload message, the module frame's length and
// the first n bytes of module, then nothing.
func (x *clientExchange) sendPartial(tb testing.TB, module []byte, n int) {
	tb.Helper()
	frame, err := wire.AppendControl(nil, wire.Payload{Args: []string{}})
	require.NoError(tb, err)
	frame = binary.AppendUvarint(frame, uint64(len(module)))
	frame = append(frame, module[:n]...)
	_, err = x.s.Write(frame)
	require.NoError(tb, err)
}

func TestSilentUploadDroppedForNewOffer(t *testing.T) {
	n := newTestNode(t, func(c *config.Jobs) { c.MaxUploads, c.MaxUploadsPerPrefix = 2, 2 })
	tiny := testwasm.Bytes(t, testwasm.Tiny)
	var silent []*clientExchange
	for range 2 {
		x := n.client(t).open(t)
		x.sendOffer(t, jobSpec{module: tiny})
		require.NotNil(t, x.accepted, "%v %v", x.rejected, x.err)
		silent = append(silent, x)
	}
	// Both places taken by streams that have sent nothing for less than
	// the grace: a new offer is refused.
	x := n.client(t).run(t, jobSpec{module: tiny})
	require.NotNil(t, x.rejected, "%v", x.err)
	assert.Contains(t, x.rejected.Detail, "still sending their payload")

	time.Sleep(uploadIdleGrace + 100*time.Millisecond)
	y := n.client(t).run(t, jobSpec{module: tiny})
	require.NotNil(t, y.result, "%v %v", y.rejected, y.err)
	assert.Equal(t, "ok\n", string(y.stdout))
	assert.Equal(t, int64(1), n.srv.UploadStats().UploadsDropped)
	// The dropped one (the first, silent the longest) was reset.
	_, err := silent[0].br.ReadByte()
	require.Error(t, err)
}

func TestUploadBufferBoundedAndSilentSenderDropped(t *testing.T) {
	const module = 1 << 20
	n := newTestNode(t, func(c *config.Jobs) {
		c.MaxModuleBytes, c.MaxStdinBytes, c.UploadBufferMB = module, 0, 1
	})
	big := make([]byte, module)
	hog := n.client(t).open(t)
	hog.sendOffer(t, jobSpec{module: big})
	require.NotNil(t, hog.accepted, "%v %v", hog.rejected, hog.err)
	hog.sendPartial(t, big, module-1000) // all but the last bytes, then silence
	eventually(t, 5*time.Second, func() bool { return n.srv.UploadStats().Buffered >= module-1000 }, "the hog's bytes never arrived")

	// The buffer is full: the honest job waits until the hog has been
	// silent for the grace, then the hog is dropped and the job runs.
	x := n.client(t).run(t, jobSpec{module: testwasm.Bytes(t, testwasm.Tiny)})
	require.NotNil(t, x.result, "%v %v", x.rejected, x.err)
	assert.Equal(t, "ok\n", string(x.stdout))
	st := n.srv.UploadStats()
	assert.Equal(t, int64(1), st.UploadsDropped, "dropped for silence (a payload deadline drops nothing)")
	assert.LessOrEqual(t, st.BufferedPeak, st.BufferMax)
	_, err := hog.br.ReadByte()
	require.Error(t, err, "the hog's stream was reset")
	eventually(t, 5*time.Second, func() bool { return n.srv.UploadStats().Buffered == 0 }, "buffer not freed")
	mfs, err := n.m.Registry.Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			got[mf.GetName()] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	assert.Equal(t, 1.0, got["phase_job_uploads_dropped_total"])
	assert.Equal(t, 0.0, got["phase_job_upload_buffer_bytes"])
	assert.Contains(t, got, "phase_job_uploads")
}
