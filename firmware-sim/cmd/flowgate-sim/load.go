package main

import (
	"fmt"
	"os"
)

// runLoad drives an MQTT broker with load and reports what it measured.
func runLoad(args []string) int {
	fmt.Fprintln(os.Stderr, "flowgate-sim load: not built yet")
	return 2
}
