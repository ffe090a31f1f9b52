package jobs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
)

// An accepted stream goes through two holds on the node. While its payload
// arrives it is an upload: it holds no job slot, only a place among
// jobs.max_uploads (and its prefix's jobs.max_uploads_per_prefix) and the
// bytes it has sent so far, reserved from jobs.upload_buffer_mb as they
// arrive. Once the payload is complete it is a job, and takes a place in
// the queue (max_concurrent running plus as many waiting). An identity is
// free, so an upload that stalls must not cost more than a place in a long
// list: when the list or the buffer is full, the upload silent the longest
// (at least uploadIdleGrace) is dropped to make room.

// uploadIdleGrace is how long an upload must have sent nothing before it
// may be dropped to make room for another. An honest client writes its
// payload without pause; a sender stalled by the node's own backpressure
// ranks after every upload that went silent earlier.
const uploadIdleGrace = 2 * time.Second

// uploadRecheck is how often an upload waiting for buffer memory looks
// again for a silent upload to drop.
const uploadRecheck = 250 * time.Millisecond

// errDropped ends an upload dropped to make room for others.
var errDropped = errors.New("upload dropped: it sent nothing while the node needed its place")

// upload is one accepted stream whose payload is still arriving; it
// implements session.Upload. Fields below mu are guarded by Server.mu.
type upload struct {
	srv      *Server
	st       network.Stream
	prefix   string
	deadline time.Time
	last     atomic.Int64 // unix nanoseconds of the last byte read
	killed   chan struct{}

	bytes     int64 // buffer reserved for this stream's payload
	uploading bool  // counted among the uploads
	ready     bool  // payload complete: counted among the jobs of its prefix
	dropped   bool
}

// Deadline is when the whole payload must have arrived.
func (u *upload) Deadline() time.Time { return u.deadline }

// Arrived marks the upload alive.
func (u *upload) Arrived(int) { u.last.Store(time.Now().UnixNano()) }

// Reserve takes n bytes of the node's upload buffer for this stream,
// waiting while the buffer is full and dropping the upload silent the
// longest, when there is one, to make room.
func (u *upload) Reserve(ctx context.Context, n int) error {
	s := u.srv
	for {
		s.mu.Lock()
		if u.dropped {
			s.mu.Unlock()
			return errDropped
		}
		if s.buffered+int64(n) <= s.bufferMax {
			s.buffered += int64(n)
			u.bytes += int64(n)
			s.bufferedPeak = max(s.bufferedPeak, s.buffered)
			s.mu.Unlock()
			return nil
		}
		victim := s.dropLocked("", u, true)
		freed := s.freed
		s.mu.Unlock()
		if victim != nil {
			_ = victim.st.Reset()
		}
		if !time.Now().Before(u.deadline) {
			return fmt.Errorf("no upload buffer free for %d bytes before the payload deadline: %w", n, os.ErrDeadlineExceeded)
		}
		t := time.NewTimer(min(uploadRecheck, time.Until(u.deadline)))
		select {
		case <-freed:
		case <-t.C:
		case <-u.killed:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		t.Stop()
	}
}

// Done moves the upload to the jobs: it leaves the upload counts and
// counts among its prefix's jobs. Its bytes stay reserved until the job
// ends.
func (u *upload) Done() {
	s := u.srv
	s.mu.Lock()
	s.leaveUploadsLocked(u)
	if !u.dropped {
		// The job now takes its place in the queue. Offers are refused
		// once the queue is full, so it overflows only by the uploads that
		// complete at about the same time; their memory is bounded by the
		// upload buffer all the same.
		u.ready = true
		s.admitted++
		s.prefixJobs[u.prefix]++
	}
	s.mu.Unlock()
}

// leaveUploadsLocked takes u out of the upload counts, once.
func (s *Server) leaveUploadsLocked(u *upload) {
	if !u.uploading {
		return
	}
	u.uploading = false
	delete(s.uploads, u)
	if s.prefixUploads[u.prefix]--; s.prefixUploads[u.prefix] <= 0 {
		delete(s.prefixUploads, u.prefix)
	}
}

// endUploadLocked frees everything u holds, when its exchange ends.
func (s *Server) endUploadLocked(u *upload) {
	s.leaveUploadsLocked(u)
	if u.ready {
		u.ready = false
		if s.prefixJobs[u.prefix]--; s.prefixJobs[u.prefix] <= 0 {
			delete(s.prefixJobs, u.prefix)
		}
	}
	if u.bytes > 0 {
		s.buffered -= u.bytes
		u.bytes = 0
	}
	close(s.freed) // wake uploads waiting for buffer memory
	s.freed = make(chan struct{})
}

// victimLocked returns the upload silent the longest, for at least
// uploadIdleGrace, other than except; from prefix when prefix is not
// empty, and holding buffer memory when withBytes.
func (s *Server) victimLocked(prefix string, except *upload, withBytes bool) *upload {
	cutoff := time.Now().Add(-uploadIdleGrace).UnixNano()
	var best *upload
	var bestLast int64
	for u := range s.uploads {
		if u == except || u.dropped || (prefix != "" && u.prefix != prefix) || (withBytes && u.bytes == 0) {
			continue
		}
		last := u.last.Load()
		if last > cutoff {
			continue
		}
		if best == nil || last < bestLast {
			best, bestLast = u, last
		}
	}
	return best
}

// dropLocked picks a victim as victimLocked does and marks it dropped: it
// leaves the upload counts at once, and frees its bytes when its exchange
// ends, which the caller brings about by resetting its stream after
// unlocking.
func (s *Server) dropLocked(prefix string, except *upload, withBytes bool) *upload {
	v := s.victimLocked(prefix, except, withBytes)
	if v == nil {
		return nil
	}
	v.dropped = true
	close(v.killed)
	s.leaveUploadsLocked(v)
	s.uploadsDropped++
	return v
}

// AddrPrefix is the address prefix per-prefix limits count by: the /24 of
// an IPv4 address, the /48 of an IPv6 one, and one prefix for all loopback
// addresses. An address without an IP (a relayed or simulated connection
// that names none) gives "".
func AddrPrefix(ip net.IP) string {
	switch {
	case ip == nil:
		return ""
	case ip.IsLoopback():
		return "loopback"
	case ip.To4() != nil:
		return (&net.IPNet{IP: ip.To4().Mask(net.CIDRMask(24, 32)), Mask: net.CIDRMask(24, 32)}).String()
	}
	return (&net.IPNet{IP: ip.Mask(net.CIDRMask(48, 128)), Mask: net.CIDRMask(48, 128)}).String()
}

// prefixOf is the address prefix of a connection's remote address: its
// first IP component (for a relayed connection, the relay's). A
// connection with no IP counts as a prefix of its own peer.
func prefixOf(c network.Conn) string {
	var ip net.IP
	for _, comp := range c.RemoteMultiaddr() {
		if code := comp.Protocol().Code; code == multiaddr.P_IP4 || code == multiaddr.P_IP6 {
			ip = net.IP(comp.RawValue())
			break
		}
	}
	if p := AddrPrefix(ip); p != "" {
		return p
	}
	return "peer:" + c.RemotePeer().String()
}

// UploadStats are the node's payload buffer and upload figures.
type UploadStats struct {
	Uploads        int   // accepted streams still sending their payload
	Buffered       int64 // bytes reserved for payloads received and not yet run
	BufferedPeak   int64 // the most Buffered has been
	BufferMax      int64 // jobs.upload_buffer_mb in bytes
	UploadsDropped int64 // uploads dropped to make room
}

// UploadStats returns the current upload figures.
func (s *Server) UploadStats() UploadStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return UploadStats{Uploads: len(s.uploads), Buffered: s.buffered, BufferedPeak: s.bufferedPeak, BufferMax: s.bufferMax, UploadsDropped: s.uploadsDropped}
}

// registerUploadMetrics adds the upload figures to the node's registry,
// read from the server when scraped.
func (s *Server) registerUploadMetrics(r prometheus.Registerer) error {
	stat := func(f func(UploadStats) float64) func() float64 {
		return func() float64 { return f(s.UploadStats()) }
	}
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "phase_job_uploads", Help: "Accepted job streams still sending their payload."},
			stat(func(u UploadStats) float64 { return float64(u.Uploads) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "phase_job_upload_buffer_bytes", Help: "Payload bytes buffered for uploads and jobs not yet finished."},
			stat(func(u UploadStats) float64 { return float64(u.Buffered) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "phase_job_uploads_dropped_total", Help: "Silent uploads dropped to make room for others."},
			stat(func(u UploadStats) float64 { return float64(u.UploadsDropped) })),
	} {
		if err := r.Register(c); err != nil {
			return fmt.Errorf("registering upload metrics: %w", err)
		}
	}
	return nil
}
