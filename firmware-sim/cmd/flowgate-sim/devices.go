package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"

	sim "github.com/flowgate/flowgate/firmware-sim"
)

// devicesFlags are flowgate-sim's flags for simulated devices.
type devicesFlags struct {
	scenario, broker, secret, truth, registry, readings, start string
	cpuProfile, memProfile                                     string
	seed                                                       uint64
	speed, faults, rate, totalRate                             float64
	duration, interval, skew                                   time.Duration
	devices, qos, buffer, cost, mqtt                           int
	count                                                      int64
	will, quiet, jsonOut, planOnly                             bool
}

func parseDevicesFlags(args []string, stderr io.Writer) (*devicesFlags, error) {
	f := &devicesFlags{}
	fs := flag.NewFlagSet("flowgate-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.scenario, "scenario", "facility", "what to simulate: "+strings.Join(sim.Scenarios, ", "))
	fs.StringVar(&f.broker, "broker", "mqtt://127.0.0.1:1883", "MQTT broker `URL`")
	fs.StringVar(&f.secret, "secret", "flowgate-sim", "derives each device's password (username = device id); empty: connect anonymously")
	fs.Uint64Var(&f.seed, "seed", 1, "random seed: the same seed and -start give the same messages and the same truth")
	fs.StringVar(&f.start, "start", "", "simulated start time, RFC 3339 (default: the next whole hour; never earlier than the gateway's clock)")
	fs.Float64Var(&f.speed, "speed", 1, "simulated seconds per wall-clock second")
	fs.DurationVar(&f.duration, "duration", time.Hour, "simulated time the scenario covers")
	fs.Int64Var(&f.count, "count", 0, "stop after this many messages in all (0: the whole scenario)")
	fs.IntVar(&f.devices, "devices", 0, "how many devices (sensors, reefers, vehicles; 0: the scenario's default), up to 10000")
	fs.DurationVar(&f.interval, "interval", 0, "time between two readings of one device, in simulated time (0: the scenario's default)")
	fs.Float64Var(&f.rate, "rate", 0, "readings per second of simulated time per device (instead of -interval)")
	fs.Float64Var(&f.totalRate, "total-rate", 0, "readings per second of simulated time across all devices (instead of -interval)")
	fs.Float64Var(&f.faults, "faults", 0, "share of messages sent malformed (0 to 1), as buggy firmware does")
	fs.DurationVar(&f.skew, "skew", 0, "each device's clock is off by up to this much either way (the truth follows the devices' clocks)")
	fs.IntVar(&f.mqtt, "mqtt", 5, "MQTT version the devices speak: 5, or 3 (3.1.1)")
	fs.IntVar(&f.qos, "qos", 1, "QoS of every publish: 0 or 1")
	fs.BoolVar(&f.will, "will", false, `each device leaves a last will {"online":false} on devices/{id}/status`)
	fs.IntVar(&f.buffer, "buffer", 1000, "messages each device keeps while disconnected (the oldest is dropped)")
	fs.StringVar(&f.truth, "truth", "", "write the ground truth (JSON lines: type, subject, time, fields) to `FILE`")
	fs.StringVar(&f.registry, "registry", "", "write the devices' registry (a devices_file for the gateway) to `FILE`")
	fs.IntVar(&f.cost, "bcrypt-cost", bcrypt.MinCost, "bcrypt cost of the registry's hashes")
	fs.StringVar(&f.readings, "readings", "", "write what reaches the rules as readings for `flowgate rules test -i` to `FILE`")
	fs.BoolVar(&f.planOnly, "plan-only", false, "write -truth, -registry and -readings, and send nothing")
	fs.BoolVar(&f.quiet, "quiet", false, "print nothing but errors")
	fs.BoolVar(&f.jsonOut, "json", false, "print the summary as one JSON object on stdout")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write the simulator's own CPU profile to `file`")
	fs.StringVar(&f.memProfile, "memprofile", "", "write the simulator's heap profile, taken half way through the run, to `file`")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: flowgate-sim [flags]\n\nSimulated devices publish a scenario's messages to an MQTT broker in simulated\ntime; -truth writes the notable events the shipped rules should find in them.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return f, f.validate()
}

func (f *devicesFlags) validate() error {
	switch {
	case f.speed <= 0:
		return errors.New("-speed must be positive")
	case f.mqtt != 3 && f.mqtt != 5:
		return errors.New("-mqtt must be 3 (3.1.1) or 5")
	case f.qos != 0 && f.qos != 1:
		return errors.New("-qos must be 0 or 1")
	case f.devices < 0 || f.devices > 10000:
		return errors.New("-devices must be between 0 and 10000")
	case f.faults < 0 || f.faults > 1:
		return errors.New("-faults must be between 0 and 1")
	case f.rate < 0 || f.totalRate < 0 || (f.rate > 0 && f.totalRate > 0):
		return errors.New("-rate and -total-rate are positive, and only one of them")
	case f.duration <= 0:
		return errors.New("-duration must be positive")
	}
	return nil
}

// options turns the flags into a scenario's options.
func (f *devicesFlags) options(now time.Time) (sim.Options, error) {
	o := sim.Options{Seed: f.seed, Duration: f.duration, Devices: f.devices, Interval: f.interval,
		Faults: f.faults, Skew: f.skew, Start: sim.DefaultStart(now)}
	if f.start != "" {
		t, err := time.Parse(time.RFC3339, f.start)
		if err != nil {
			return o, fmt.Errorf("-start: %w", err)
		}
		o.Start = t
	}
	n := f.devices
	if n == 0 {
		n = 12 // facility's default; the rate flags are meant for sensors
	}
	switch {
	case f.rate > 0:
		o.Interval = time.Duration(float64(time.Second) / f.rate)
	case f.totalRate > 0:
		o.Interval = time.Duration(float64(time.Second) * float64(n) / f.totalRate)
	}
	return o, nil
}

// runDevices runs a scenario's devices until the scenario ends or the
// process is interrupted.
func runDevices(args []string) int {
	f, err := parseDevicesFlags(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "flowgate-sim:", err)
		return 2
	}
	o, err := f.options(time.Now())
	if err != nil {
		fmt.Fprintln(os.Stderr, "flowgate-sim:", err)
		return 2
	}
	plan, err := sim.NewPlan(f.scenario, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "flowgate-sim:", err)
		return 2
	}
	if err := writeFiles(f, plan); err != nil {
		fmt.Fprintln(os.Stderr, "flowgate-sim:", err)
		return 1
	}
	if f.planOnly {
		return 0
	}
	level := slog.LevelWarn
	if f.quiet {
		level = slog.LevelError
	}
	r := &sim.Runner{Broker: f.broker, Plan: plan, Clock: &sim.Clock{Start: plan.Start, Speed: f.speed},
		Secret: f.secret, MQTT: f.mqtt, QoS: byte(f.qos), Will: f.will, Buffer: f.buffer, Count: f.count,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	prof, err := startProfiler(f.cpuProfile, f.memProfile, r, plan.Count())
	if err != nil {
		fmt.Fprintln(os.Stderr, "flowgate-sim:", err)
		return 1
	}
	began := time.Now()
	showProgress := !f.quiet && !f.jsonOut && term.IsTerminal(int(os.Stderr.Fd()))
	done := make(chan struct{})
	progressDone := make(chan struct{})
	go func() { defer close(progressDone); progress(r, os.Stderr, showProgress, done) }()
	err = r.Run(ctx)
	close(done)
	<-progressDone
	sum := summarize(r, plan, time.Since(began))
	if perr := prof.finish(); perr != nil {
		fmt.Fprintln(os.Stderr, "flowgate-sim: profile:", perr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "flowgate-sim:", err)
	}
	switch {
	case f.jsonOut:
		_ = json.NewEncoder(os.Stdout).Encode(sum)
	case !f.quiet:
		fmt.Fprintln(os.Stderr, sum.String())
	}
	if err != nil || sum.Errors > 0 {
		return 1
	}
	return 0
}

// writeFiles writes the truth, registry and readings files asked for.
func writeFiles(f *devicesFlags, plan *sim.Plan) error {
	write := func(name string, fn func(io.Writer) error) error {
		if name == "" {
			return nil
		}
		out, err := os.Create(name)
		if err != nil {
			return err
		}
		if err := fn(out); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	}
	if err := write(f.truth, func(w io.Writer) error { return sim.WriteTruth(w, plan.Truth) }); err != nil {
		return err
	}
	if err := write(f.registry, func(w io.Writer) error { return sim.WriteRegistry(w, plan.Devices, f.secret, f.cost) }); err != nil {
		return err
	}
	return write(f.readings, func(w io.Writer) error { return sim.WriteReadings(w, plan) })
}
