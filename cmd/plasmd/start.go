package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"

	"github.com/phase-protocol/plasm/node"
	"github.com/phase-protocol/plasm/node/api"
	"github.com/phase-protocol/plasm/node/config"
)

const startAbout = `Runs the node until SIGINT or SIGTERM: joins the private Phase DHT through the
bootstrap peers (retrying with backoff while none answers), publishes its capability
record, accepts jobs, and serves the local HTTP API. Logs are JSON lines on stderr,
each with an "event" field.

Configuration: shipped defaults, then --config FILE (JSON; every field documented in
docs/CONFIG.md; unknown fields are an error), then these flags. The default listen
port is 4747 (TCP and QUIC); the API listens on 127.0.0.1:4748.`

// stringsFlag collects a repeatable flag.
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

func cmdStart(ctx context.Context, env *cmdEnv, args []string) int {
	fs := newFlagSet(env, "start", "[--config FILE] [--data-dir DIR] [--listen MULTIADDR]... [--bootstrap MULTIADDR]... [--api ADDR]", startAbout)
	cfgFile := fs.String("config", "", "config file (JSON)")
	dataDir := fs.String("data-dir", "", "data directory (default $PLASMD_DATA_DIR or ~/.plasmd)")
	var listen, bootstrap stringsFlag
	fs.Var(&listen, "listen", "listen multiaddr (repeatable; replaces the config's list)")
	fs.Var(&bootstrap, "bootstrap", "bootstrap multiaddr ending in /p2p/<peer-id> (repeatable; replaces the config's list)")
	apiAddr := fs.String("api", "", "local API address (default 127.0.0.1:4748; \"off\" disables it)")
	logLevel := fs.String("log-level", "", "debug, info, warn or error")
	logFormat := fs.String("log-format", "", "json or text")
	ready := fs.Bool("ready", false, `once serving, print one JSON line {"peer_id","addrs","api"} on stdout (the conformance launch contract)`)
	pos, _, err := parseArgs(fs, args)
	if err != nil {
		return helpOrUsage(err)
	}
	if len(pos) != 0 {
		errf(env.stderr, "start: unexpected arguments %q", pos)
		return exitUsage
	}
	cfg := config.Default()
	if *cfgFile != "" {
		if cfg, err = config.Load(*cfgFile); err != nil {
			errf(env.stderr, "start: %v", err)
			return exitUsage
		}
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	if cfg.DataDir == "" {
		cfg.DataDir = defaultDataDir()
	}
	if len(listen) > 0 {
		cfg.Listen = listen
	}
	if len(bootstrap) > 0 {
		cfg.Bootstrap = bootstrap
	}
	switch *apiAddr {
	case "":
	case "off":
		cfg.API = ""
	default:
		cfg.API = *apiAddr
	}
	if *logLevel != "" {
		cfg.Log.Level = *logLevel
	}
	if *logFormat != "" {
		cfg.Log.Format = *logFormat
	}
	if err := cfg.Validate(); err != nil {
		errf(env.stderr, "start: config: %v", err)
		return exitUsage
	}
	log := newLogger(env.stderr, cfg.Log)
	var readyOut io.Writer
	if *ready {
		readyOut = env.stdout
	}
	if err := runDaemon(ctx, cfg, log, readyOut); err != nil {
		log.Error("plasmd stopped", "event", "node_failed", "error", err.Error())
		errf(env.stderr, "start: %v", err)
		return exitFailed
	}
	return exitOK
}

// runDaemon runs a node and its API until ctx ends. With ready set, it
// writes one readyLine there once the node and its API serve.
func runDaemon(ctx context.Context, cfg config.Config, log *slog.Logger, ready io.Writer) error {
	var access api.Access
	if cfg.API != "" {
		var err error
		if access, err = apiAccess(cfg); err != nil {
			return err
		}
	}
	n, err := node.New(ctx, node.Options{Config: cfg, Logger: log})
	if err != nil {
		return err
	}
	defer func() {
		if err := n.Close(); err != nil {
			log.Warn("shutdown incomplete", "event", "node_stopped", "error", err.Error())
			return
		}
		log.Info("node stopped", "event", "node_stopped")
	}()
	apiErr := make(chan error, 1)
	apiAddr := ""
	if cfg.API != "" {
		l, err := api.Listen(cfg.API, log)
		if err != nil {
			return err
		}
		apiAddr = l.Addr().String()
		access.Addr = apiAddr
		log.Info("local API listening", "event", "api_listening", "addr", apiAddr, "token", access.Token != "",
			"allowed_origins", len(access.Origins))
		srv := api.New(n, log, api.JobsHandler(n.Client(), n.Metrics, log))
		srv.SetAccess(access)
		go func() { apiErr <- api.Serve(ctx, l, srv) }()
	}
	if err := n.Start(ctx); err != nil {
		return err
	}
	if ready != nil {
		if err := writeReady(ready, n, apiAddr); err != nil {
			return err
		}
	}
	select {
	case <-ctx.Done():
		log.Info("shutting down", "event", "node_stopping")
	case err := <-apiErr:
		if err != nil {
			return fmt.Errorf("api: %w", err)
		}
	}
	return nil
}

// apiAccess is the API's access policy from cfg: the token file is read
// (and its mode and owner checked) once, at start.
func apiAccess(cfg config.Config) (api.Access, error) {
	a := api.Access{Hosts: cfg.APIAccess.AllowedHosts, Origins: cfg.APIAccess.AllowedOrigins}
	path, explicit := api.TokenPath(cfg.DataDir, cfg.APIAccess.TokenFile)
	if _, err := os.Stat(path); err != nil && !explicit && errors.Is(err, fs.ErrNotExist) {
		return a, nil // no token: loopback alone guards the API
	}
	tok, err := api.LoadToken(path)
	if err != nil {
		return a, fmt.Errorf("api_access.token_file: %w", err)
	}
	a.Token = tok
	return a, nil
}

// readyLine is what --ready prints: the launch contract's line
// (docs/CONFORMANCE.md).
type readyLine struct {
	PeerID string   `json:"peer_id"`
	Addrs  []string `json:"addrs"`
	API    string   `json:"api"`
}

func writeReady(w io.Writer, n *node.Node, apiAddr string) error {
	r := readyLine{PeerID: n.Host.ID().String(), API: apiAddr, Addrs: []string{}}
	for _, a := range n.Addrs() {
		r.Addrs = append(r.Addrs, a.String())
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(w, "%s\n", b); err != nil {
		return fmt.Errorf("writing the ready line: %w", err)
	}
	return nil
}

func newLogger(w io.Writer, c config.Log) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
