package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/flowgate/flowgate/firmware-sim/load"
)

// runLoad drives an MQTT broker with load and reports what it measured.
func runLoad(args []string) int {
	c := load.Defaults()
	fs := flag.NewFlagSet("flowgate-sim load", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: flowgate-sim load [flags]\n\n"+
			"Publishes stamped messages to an MQTT broker from -pub connections, receives them on -sub\n"+
			"subscriptions, and prints messages/s sent, acknowledged and received, latency percentiles\n"+
			"(from the send time stamped in each payload), losses and duplicates, and with -pid the\n"+
			"broker's RSS (VmRSS) and CPU. The run ends after -count messages or -duration, whichever\n"+
			"comes first. Flags:")
		fs.PrintDefaults()
	}
	fs.StringVar(&c.Broker, "broker", c.Broker, "MQTT broker the publishers connect to (`host:port` or mqtt://host:port)")
	fs.StringVar(&c.SubBroker, "sub-broker", "", "broker the subscribers connect to (default: -broker), e.g. the cloud behind a gateway")
	fs.IntVar(&c.Publishers, "pub", c.Publishers, "publisher connections")
	fs.IntVar(&c.Subscribers, "sub", c.Subscribers, "subscriber connections, each receiving every message")
	qos := fs.Int("qos", int(c.QoS), "QoS of the publishes: 0 or 1")
	subQoS := fs.Int("sub-qos", -1, "QoS of the subscriptions (default: -qos)")
	fs.IntVar(&c.Size, "size", c.Size, "payload `bytes` (at least 58: the stamp)")
	fs.Float64Var(&c.Rate, "rate", 0, "total messages per second over all publishers; 0: as fast as the broker acknowledges")
	fs.IntVar(&c.Count, "count", 0, "messages in all (0: until -duration)")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "how long to publish (0: until -count)")
	fs.IntVar(&c.Inflight, "inflight", c.Inflight, "QoS 1 publishes awaiting PUBACK per publisher")
	fs.StringVar(&c.Topic, "topic", c.Topic, "publish topic; {id} is the client id, {i} the publisher's index")
	fs.StringVar(&c.SubTopic, "sub-topic", c.SubTopic, "subscription filter")
	fs.StringVar(&c.IDPrefix, "id-prefix", c.IDPrefix, "publishers' client ids are this plus 0, 1, 2…")
	fs.StringVar(&c.SubIDPrefix, "sub-id-prefix", c.SubIDPrefix, "subscribers' client ids are this plus 0, 1, 2…")
	fs.StringVar(&c.Username, "username", "", "publishers' username; {id} is the client id (a Flowgate device logs in as its id)")
	fs.StringVar(&c.Password, "password", "", "publishers' password")
	fs.StringVar(&c.SubUsername, "sub-username", "", "subscribers' username ({id} as above)")
	fs.StringVar(&c.SubPassword, "sub-password", "", "subscribers' password")
	fs.IntVar(&c.PID, "pid", 0, "the broker's process id: sample its RSS and CPU from /proc")
	fs.DurationVar(&c.SampleEvery, "sample", c.SampleEvery, "how often to sample the broker")
	fs.DurationVar(&c.Drain, "drain", c.Drain, "after the last publish, wait for acks and messages while they keep coming this often")
	fs.DurationVar(&c.DrainMax, "drain-max", c.DrainMax, "the longest wait after the last publish")
	fs.DurationVar(&c.Warmup, "warmup", 0, "also report the latency of the messages sent after this much of the run (steady state)")
	fs.IntVar(&c.ConnectParallel, "connect-parallel", c.ConnectParallel, "connections opened at once")
	cpuProfile := fs.String("cpuprofile", "", "write the generator's own CPU profile to `file`")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "flowgate-sim load: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *subQoS < 0 {
		*subQoS = *qos
	}
	if *qos < 0 || *qos > 1 || *subQoS > 1 {
		fmt.Fprintln(os.Stderr, "flowgate-sim load: qos must be 0 or 1")
		return 2
	}
	c.QoS, c.SubQoS = byte(*qos), byte(*subQoS)
	if err := c.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "flowgate-sim", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "flowgate-sim load:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "flowgate-sim load:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	res, err := load.Run(ctx, c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "flowgate-sim", err)
		return 1
	}
	res.Print(os.Stdout)
	if res.Lost > 0 || len(res.Errors) > 0 {
		return 1
	}
	return 0
}
