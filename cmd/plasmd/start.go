package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
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
	if err := runDaemon(ctx, cfg, log); err != nil {
		log.Error("plasmd stopped", "event", "node_failed", "error", err.Error())
		errf(env.stderr, "start: %v", err)
		return exitFailed
	}
	return exitOK
}

// runDaemon runs a node and its API until ctx ends.
func runDaemon(ctx context.Context, cfg config.Config, log *slog.Logger) error {
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
	if cfg.API != "" {
		l, err := api.Listen(cfg.API, log)
		if err != nil {
			return err
		}
		log.Info("local API listening", "event", "api_listening", "addr", l.Addr().String())
		go func() { apiErr <- api.Serve(ctx, l, api.New(n, log, api.JobsHandler(n.Client(), n.Metrics, log))) }()
	}
	if err := n.Start(ctx); err != nil {
		return err
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

func newLogger(w io.Writer, c config.Log) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
