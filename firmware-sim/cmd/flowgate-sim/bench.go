package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/flowgate/flowgate/firmware-sim/bench"
)

// runBench runs the side-by-side benchmark and prints its table.
func runBench(args []string) int {
	fs := flag.NewFlagSet("flowgate-sim bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: flowgate-sim bench -flowgate bin/flowgate [flags]\n\n"+
			"Runs the same load against Debian's mosquitto and the flowgate binary (full pipeline, durable\n"+
			"outbox, stand-in cloud mosquitto), alternating, and prints a markdown table to stdout\n"+
			"(progress on stderr). The idle, latency and footprint loads also run against mochi alone\n"+
			"(flowgate-sim broker: the broker Flowgate embeds, nothing on it). Flags:")
		fs.PrintDefaults()
	}
	short := fs.Bool("short", false, "a few seconds, small counts: proves the harness works, not the speed")
	o := bench.Full()
	flowgate := fs.String("flowgate", "bin/flowgate", "the flowgate binary")
	config := fs.String("config", "configs/bench/flowgate.yaml", "the gateway's config")
	mosq := fs.String("mosquitto", "", "the mosquitto binary (default: on PATH or /usr/sbin)")
	gobench := fs.String("gobench", "", "`go test -bench` output to take the outbox figures from")
	profiles := fs.String("profile", "", "write the gateway's CPU and heap profiles of ingest round 1 into `dir`")
	rounds := fs.Int("rounds", 0, "ingest rounds, each mosquitto then flowgate (default 3; -short 1)")
	only := fs.String("only", "", "run only these phases, comma-separated, of "+strings.Join(bench.Phases, ", ")+" (default all)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *short {
		o = bench.Short()
	}
	if *rounds > 0 {
		o.Rounds = *rounds
	}
	o.Flowgate, o.Config, o.Mosquitto, o.GoBench, o.ProfileDir, o.Log = *flowgate, *config, *mosq, *gobench, *profiles, os.Stderr
	if *only != "" {
		o.Only = strings.Split(*only, ",")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rep, err := bench.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "flowgate-sim", err)
		return 1
	}
	rep.Markdown(os.Stdout)
	return 0
}
