package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/flowgate/flowgate/firmware-sim/bench"
)

// runBroker serves the broker Flowgate embeds, alone, until SIGINT or
// SIGTERM: the third party of the side-by-side benchmark.
func runBroker(args []string) int {
	fs := flag.NewFlagSet("flowgate-sim broker", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: flowgate-sim broker [flags]\n\n"+
			"Serves the MQTT broker Flowgate embeds (mochi) with nothing on it: anonymous, in memory,\n"+
			"no pipeline, the gateway's default broker limits. make bench measures it beside mosquitto\n"+
			"and the gateway, to show what the embedded broker alone costs. Flags:")
		fs.PrintDefaults()
	}
	listen := fs.String("listen", "127.0.0.1:1883", "`host:port` to listen on")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// mochi warns of each message it drops for a slow subscriber: a
	// write per message, in its publish path, when it can least afford it.
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	if err := bench.ServeMochi(ctx, *listen, log); err != nil {
		fmt.Fprintln(os.Stderr, "flowgate-sim", err)
		return 1
	}
	return 0
}
