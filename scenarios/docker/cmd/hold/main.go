// Command hold keeps a container, and so its network namespace, alive
// until SIGTERM or SIGINT. The Docker scenarios use it for NAT routers,
// whose forwarding rules are set from the host, and to hold a NATed
// node's namespace so its route through the router is in place before
// the node starts.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	fmt.Println("holding: ready")
	s := <-sig
	fmt.Println("holding: stopping on", s)
}
