package wasm

// cappedBuffer keeps the first limit bytes written to it and counts the rest.
// It never returns an error: a guest that floods its output keeps running
// (and is stopped by the deadline) instead of dying on a write error, which
// would turn a resource problem into a misleading guest failure.
type cappedBuffer struct {
	buf     []byte
	limit   int
	dropped int64
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if room := c.limit - len(c.buf); room > 0 {
		n := min(room, len(p))
		c.buf = append(c.buf, p[:n]...)
		c.dropped += int64(len(p) - n)
	} else {
		c.dropped += int64(len(p))
	}
	return len(p), nil
}

func (c *cappedBuffer) truncated() bool { return c.dropped > 0 }
