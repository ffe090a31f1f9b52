package p2p

import (
	"errors"
	"fmt"
	"net"
	"syscall"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// CheckPortsFree fails with a clear error when a fixed TCP or UDP listen
// port is already taken. libp2p binds with SO_REUSEPORT, so a second
// daemon on the same port would otherwise start and silently share it.
func CheckPortsFree(listen []string) error {
	for _, s := range listen {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return fmt.Errorf("listen address %q: %w", s, err)
		}
		na, err := manet.ToNetAddr(a)
		if err != nil {
			continue // not a plain IP transport address (e.g. a sim address)
		}
		switch addr := na.(type) {
		case *net.TCPAddr:
			if addr.Port == 0 {
				continue
			}
			l, err := net.ListenTCP("tcp", addr)
			if err != nil {
				return busyError(s, err)
			}
			l.Close()
		case *net.UDPAddr:
			if addr.Port == 0 {
				continue
			}
			c, err := net.ListenUDP("udp", addr)
			if err != nil {
				return busyError(s, err)
			}
			c.Close()
		}
	}
	return nil
}

func busyError(addr string, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("listen address %s is already in use (another plasmd? choose another with --listen): %w", addr, err)
	}
	return fmt.Errorf("cannot listen on %s: %w", addr, err)
}
