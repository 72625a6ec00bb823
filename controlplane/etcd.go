package main

import (
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"go.etcd.io/etcd/server/v3/embed"
)

func parseURLs(flagName, value string) ([]url.URL, error) {
	var out []url.URL
	for _, raw := range strings.Split(value, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("--%s: %q: %w", flagName, raw, err)
		}
		out = append(out, *u)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--%s: no URL given", flagName)
	}
	return out, nil
}

// runEtcd starts a single-member embedded etcd and serves until SIGINT/SIGTERM.
func runEtcd() int {
	fs := pflag.NewFlagSet("etcd", pflag.ContinueOnError)
	name := fs.String("name", "default", "human-readable name for this member")
	dataDir := fs.String("data-dir", "default.etcd", "path to the data directory")
	listenClient := fs.String("listen-client-urls", "http://127.0.0.1:2379", "comma-separated URLs to listen on for client traffic")
	advertiseClient := fs.String("advertise-client-urls", "", "client URLs to advertise (default: --listen-client-urls)")
	listenPeer := fs.String("listen-peer-urls", "http://127.0.0.1:2380", "comma-separated URLs to listen on for peer traffic")
	advertisePeer := fs.String("initial-advertise-peer-urls", "", "peer URLs to advertise (default: --listen-peer-urls)")
	listenMetrics := fs.String("listen-metrics-urls", "", "extra URLs serving /metrics and /health")
	logLevel := fs.String("log-level", "warn", "debug, info, warn, error, panic or fatal")
	quota := fs.Int64("quota-backend-bytes", 0, "backend size quota in bytes (0: etcd default)")
	noFsync := fs.Bool("unsafe-no-fsync", false, "disable fsync (faster, unsafe on power loss; fine for tests)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if err == pflag.ErrHelp {
			return 0
		}
		fmt.Fprintln(os.Stderr, "etcd:", err)
		return 2
	}
	if *advertiseClient == "" {
		*advertiseClient = *listenClient
	}
	if *advertisePeer == "" {
		*advertisePeer = *listenPeer
	}

	cfg := embed.NewConfig()
	cfg.Name = *name
	cfg.Dir = *dataDir
	cfg.LogLevel = *logLevel
	cfg.LogOutputs = []string{"stderr"}
	cfg.UnsafeNoFsync = *noFsync
	if *quota > 0 {
		cfg.QuotaBackendBytes = *quota
	}
	var err error
	urlFlags := []struct {
		flag  string
		value string
		dst   *[]url.URL
	}{
		{"listen-client-urls", *listenClient, &cfg.ListenClientUrls},
		{"advertise-client-urls", *advertiseClient, &cfg.AdvertiseClientUrls},
		{"listen-peer-urls", *listenPeer, &cfg.ListenPeerUrls},
		{"initial-advertise-peer-urls", *advertisePeer, &cfg.AdvertisePeerUrls},
	}
	for _, f := range urlFlags {
		if *f.dst, err = parseURLs(f.flag, f.value); err != nil {
			fmt.Fprintln(os.Stderr, "etcd:", err)
			return 2
		}
	}
	if *listenMetrics != "" {
		if cfg.ListenMetricsUrls, err = parseURLs("listen-metrics-urls", *listenMetrics); err != nil {
			fmt.Fprintln(os.Stderr, "etcd:", err)
			return 2
		}
	}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcd: start:", err)
		return 1
	}
	defer e.Close()

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-e.Server.ReadyNotify():
		fmt.Fprintln(os.Stderr, "etcd: ready to serve client requests on", *listenClient)
	case <-time.After(60 * time.Second):
		fmt.Fprintln(os.Stderr, "etcd: not ready after 60s")
		e.Server.Stop()
		return 1
	case sig := <-signals:
		fmt.Fprintln(os.Stderr, "etcd: received", sig, "before ready")
		return 0
	}
	select {
	case err := <-e.Err():
		fmt.Fprintln(os.Stderr, "etcd:", err)
		return 1
	case sig := <-signals:
		fmt.Fprintln(os.Stderr, "etcd: received", sig, "; shutting down")
		return 0
	}
}
