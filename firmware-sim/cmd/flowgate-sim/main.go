// Command flowgate-sim runs simulated device firmware against an MQTT
// broker (the gateway's or any other), or measures a broker under load.
//
//	flowgate-sim [devices flags]      simulated devices (see -h)
//	flowgate-sim load [flags]         a load generator for any MQTT broker
//	flowgate-sim bench [flags]        the side-by-side benchmark of make bench
//	flowgate-sim broker [flags]       the broker Flowgate embeds, alone (for bench)
package main

import (
	"fmt"
	"os"
)

func main() {
	args := os.Args[1:]
	cmd := ""
	if len(args) > 0 {
		cmd = args[0]
	}
	switch cmd {
	case "load":
		os.Exit(runLoad(args[1:]))
	case "bench":
		os.Exit(runBench(args[1:]))
	case "broker":
		os.Exit(runBroker(args[1:]))
	case "help", "-help", "--help":
		fmt.Fprintln(os.Stderr, "Usage: flowgate-sim [flags]        simulated devices (flowgate-sim -h lists the flags)\n"+
			"       flowgate-sim load [flags]   load generator for any MQTT broker (flowgate-sim load -h)\n"+
			"       flowgate-sim bench [flags]  mosquitto and flowgate side by side (flowgate-sim bench -h)\n"+
			"       flowgate-sim broker [flags] the broker Flowgate embeds, alone (flowgate-sim broker -h)")
		os.Exit(0)
	default:
		os.Exit(runDevices(args))
	}
}
