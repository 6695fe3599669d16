package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	sim "github.com/flowgate/flowgate/firmware-sim"
)

// runDevices runs simulated devices until interrupted.
func runDevices(args []string) int {
	fs := flag.NewFlagSet("flowgate-sim", flag.ContinueOnError)
	broker := fs.String("broker", "mqtt://127.0.0.1:1883", "MQTT broker `URL`")
	ids := fs.String("devices", "sensor-1,sensor-2,sensor-3", "comma-separated device `ids`")
	password := fs.String("password", "", "password of every device (username = id); empty connects anonymously")
	interval := fs.Duration("interval", 2*time.Second, "time between two readings of one device")
	seed := fs.Uint64("seed", 1, "random seed: the same seed gives the same readings")
	malformed := fs.Int("malformed-every", 0, "the last device sends a malformed payload every `n`-th reading (0: never)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	f := &sim.Fleet{Broker: *broker, Interval: *interval, Seed: *seed, MalformedEvery: *malformed,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
		OnPublish: func(device, topic string, payload []byte) {
			fmt.Printf("%s %s %s\n", device, topic, payload)
		}}
	for _, id := range strings.Split(*ids, ",") {
		d := sim.Device{ID: strings.TrimSpace(id)}
		if *password != "" {
			d.Username, d.Password = d.ID, *password
		}
		f.Devices = append(f.Devices, d)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := f.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
