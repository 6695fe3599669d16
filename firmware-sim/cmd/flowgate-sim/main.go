// Command flowgate-sim runs simulated devices against an MQTT broker.
//
//	flowgate-sim -broker mqtt://127.0.0.1:1883 -devices sensor-1,sensor-2 -password demo
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

func main() {
	broker := flag.String("broker", "mqtt://127.0.0.1:1883", "MQTT broker `URL`")
	ids := flag.String("devices", "sensor-1,sensor-2,sensor-3", "comma-separated device `ids`")
	password := flag.String("password", "", "password of every device (username = id); empty connects anonymously")
	interval := flag.Duration("interval", 2*time.Second, "time between two readings of one device")
	seed := flag.Uint64("seed", 1, "random seed: the same seed gives the same readings")
	malformed := flag.Int("malformed-every", 0, "the last device sends a malformed payload every `n`-th reading (0: never)")
	flag.Parse()

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
		os.Exit(1)
	}
}
