package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"runtime"

	"github.com/phase-protocol/plasm/node/api"

	"github.com/phase-protocol/plasm/node/identity"
	"github.com/phase-protocol/plasm/node/version"
)

func cmdInit(ctx context.Context, env *cmdEnv, args []string) int {
	fs := newFlagSet(env, "init", "[--data-dir DIR] [--api-token] [--json]",
		"Creates the node identity (an Ed25519 key, mode 0600, in a 0700 data directory) if it\ndoes not exist, and prints its peer ID and public key.")
	dataDir := fs.String("data-dir", defaultDataDir(), "node data directory")
	jsonOut := fs.Bool("json", false, "print JSON")
	apiToken := fs.Bool("api-token", false, "also create the local API's bearer token ("+api.TokenFile+", mode 0600) unless it exists: plasmd start then requires it")
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
	tokenFile := ""
	if *apiToken {
		tokenFile = filepath.Join(*dataDir, api.TokenFile)
		if _, err := api.CreateToken(tokenFile); err != nil {
			errf(env.stderr, "init: %v", err)
			return exitFailed
		}
	}
	if *jsonOut {
		out := map[string]string{"peer_id": id.ID.String(), "public_key": id.PublicKeyHex(), "data_dir": *dataDir}
		if tokenFile != "" {
			out["api_token_file"] = tokenFile
		}
		json.NewEncoder(env.stdout).Encode(out)
		return exitOK
	}
	fmt.Fprintf(env.stdout, "peer ID:    %s\npublic key: %s\ndata dir:   %s\n", id.ID, id.PublicKeyHex(), *dataDir)
	if tokenFile != "" {
		fmt.Fprintf(env.stdout, "API token:  %s\n", tokenFile)
	}
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
