package client_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/phase-protocol/plasm/node/client"
)

// Run a module on a known node and print its verified output. (Without a
// node to talk to this example only compiles; it is not run.)
func ExampleClient_Run() {
	h, err := libp2p.New(libp2p.NoListenAddrs)
	if err != nil {
		panic(err)
	}
	defer h.Close()
	node, err := peer.AddrInfoFromString("/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN")
	if err != nil {
		panic(err)
	}
	module, err := os.ReadFile("hello.wasm")
	if err != nil {
		panic(err)
	}
	c := &client.Client{Host: h}
	res, err := c.Run(context.Background(), client.Job{Module: module, Args: []string{"hello"}},
		client.Options{Candidates: []peer.AddrInfo{*node}})
	if err != nil {
		var runErr *client.Error
		if errors.As(err, &runErr) && errors.Is(err, client.ErrExhausted) {
			fmt.Println("tried", len(runErr.Attempts), "nodes")
		}
		fmt.Println(err) // the cause, then one line per node tried and why
		return
	}
	fmt.Printf("%s ran it: %s, exit %d, %q\n", res.Node, res.Outcome, res.ExitCode, res.Stdout)
}
