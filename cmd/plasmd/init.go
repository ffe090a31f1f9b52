package main

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"

	"github.com/phase-protocol/plasm/node/identity"
	"github.com/phase-protocol/plasm/node/version"
)

func cmdInit(ctx context.Context, env *cmdEnv, args []string) int {
	fs := newFlagSet(env, "init", "[--data-dir DIR] [--json]",
		"Creates the node identity (an Ed25519 key, mode 0600, in a 0700 data directory) if it\ndoes not exist, and prints its peer ID and public key.")
	dataDir := fs.String("data-dir", defaultDataDir(), "node data directory")
	jsonOut := fs.Bool("json", false, "print JSON")
	pos, _, err := parseArgs(fs, args)
	if err != nil {
		return helpOrUsage(err)
	}
	if len(pos) != 0 {
		errf(env.stderr, "init: unexpected arguments %q", pos)
		return exitUsage
	}
	id, err := identity.LoadOrCreate(*dataDir)
	if err != nil {
		errf(env.stderr, "init: %v", err)
		return exitFailed
	}
	if *jsonOut {
		json.NewEncoder(env.stdout).Encode(map[string]string{"peer_id": id.ID.String(), "public_key": id.PublicKeyHex(), "data_dir": *dataDir})
		return exitOK
	}
	fmt.Fprintf(env.stdout, "peer ID:    %s\npublic key: %s\ndata dir:   %s\n", id.ID, id.PublicKeyHex(), *dataDir)
	return exitOK
}

func cmdVersion(ctx context.Context, env *cmdEnv, args []string) int {
	fs := newFlagSet(env, "version", "", "Prints plasmd's version, the runtime and the protocols it speaks.")
	if _, _, err := parseArgs(fs, args); err != nil {
		return helpOrUsage(err)
	}
	fmt.Fprintf(env.stdout, "plasmd %s (%s %s, %s/%s, %s)\nprotocols: /phase/job/1.0.0 /phase/caps/1.0.0, receipt v1\n",
		version.Version, version.Runtime, version.RuntimeVersion, runtime.GOOS, runtime.GOARCH, runtime.Version())
	return exitOK
}
