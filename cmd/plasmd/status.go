package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/phase-protocol/plasm/node/api"
	"github.com/phase-protocol/plasm/node/config"
)

func cmdStatus(ctx context.Context, env *cmdEnv, args []string) int {
	fs := newFlagSet(env, "status", "[--api ADDR] [--json]", "Shows the running node's identity, addresses, peers and capability record, read from its local API.")
	apiAddr := fs.String("api", config.DefaultAPI, "the node's local API address")
	jsonOut := fs.Bool("json", false, "print the API's JSON")
	if pos, _, err := parseArgs(fs, args); err != nil || len(pos) != 0 {
		if err == nil {
			errf(env.stderr, "status: unexpected arguments %q", pos)
		}
		return helpOrUsage(err)
	}
	var info api.NodeInfo
	raw, err := apiGet(ctx, *apiAddr, "/v1/node", &info)
	if err != nil {
		errf(env.stderr, "status: %v", err)
		return exitFailed
	}
	if *jsonOut {
		env.stdout.Write(raw)
		return exitOK
	}
	w := env.stdout
	fmt.Fprintf(w, "peer ID:       %s\npublic key:    %s\nversion:       %s\nuptime:        %s\npeers:         %d\nrouting table: %d\n",
		info.PeerID, info.PublicKey, info.Version, (time.Duration(info.UptimeSeconds) * time.Second).String(), info.Peers, info.RoutingTableSize)
	fmt.Fprintln(w, "addresses:")
	for _, a := range info.Addrs {
		fmt.Fprintf(w, "  %s\n", a)
	}
	if r := info.Record; r != nil {
		fmt.Fprintf(w, "capabilities:  %s/%s, %d cores, %d MB for jobs, %s %s, abis %s\n", r.OS, r.Arch, r.CPUCores, r.MemoryMB, r.Runtime, r.RuntimeVersion, strings.Join(r.ABIs, ","))
		fmt.Fprintf(w, "limits:        module %d bytes, memory %d MB, timeout %ds, %d concurrent jobs\n", r.Limits.MaxModuleBytes, r.Limits.MaxMemoryMB, r.Limits.MaxTimeoutSeconds, r.Limits.MaxConcurrentJobs)
		fmt.Fprintf(w, "load:          %d running, %d queued\nrecord:        seq %d, expires %s\n", r.Load.RunningJobs, r.Load.QueuedJobs, r.Seq, time.Unix(r.ExpiresAt, 0).UTC().Format(time.RFC3339))
	} else {
		fmt.Fprintln(w, "capabilities:  not yet published")
	}
	return exitOK
}

func cmdPeers(ctx context.Context, env *cmdEnv, args []string) int {
	fs := newFlagSet(env, "peers", "[--api ADDR] [--json]", "Lists the peers the running node is connected to, read from its local API.")
	apiAddr := fs.String("api", config.DefaultAPI, "the node's local API address")
	jsonOut := fs.Bool("json", false, "print the API's JSON")
	if pos, _, err := parseArgs(fs, args); err != nil || len(pos) != 0 {
		if err == nil {
			errf(env.stderr, "peers: unexpected arguments %q", pos)
		}
		return helpOrUsage(err)
	}
	var peers []api.PeerInfo
	raw, err := apiGet(ctx, *apiAddr, "/v1/peers", &peers)
	if err != nil {
		errf(env.stderr, "peers: %v", err)
		return exitFailed
	}
	if *jsonOut {
		env.stdout.Write(raw)
		return exitOK
	}
	fmt.Fprintf(env.stdout, "%d peers\n", len(peers))
	for _, p := range peers {
		dht := ""
		if p.InDHT {
			dht = " dht"
		}
		fmt.Fprintf(env.stdout, "%s %-8s %7.2fms%s %s\n", p.PeerID, p.Direction, p.LatencyMS, dht, strings.Join(p.Addrs, " "))
	}
	return exitOK
}

// apiGet fetches a JSON document from the local API into v and returns
// the raw body too.
func apiGet(ctx context.Context, addr, path string, v any) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, apiURL(addr)+path, nil)
	if err != nil {
		return nil, err
	}
	token, err := apiToken("")
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("no node API at %s (is plasmd start running? see --api): %w", addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e api.ErrorBody
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("%s: %s", resp.Status, e.Error)
		}
		return nil, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", path, err)
	}
	return body, nil
}

func apiURL(addr string) string {
	if strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://") {
		return strings.TrimRight(addr, "/")
	}
	return "http://" + addr
}
