// Command flowgate is the Flowgate edge gateway: an embedded MQTT broker for
// devices, normalization and rules, and a store-and-forward uplink to a
// cloud MQTT broker.
//
//	flowgate run -c FILE      run the gateway
//	flowgate check -c FILE    validate the config and every file it references
//	flowgate passwd           print a bcrypt hash for a device password
//	flowgate demo             the whole job on one machine, with simulated devices
//	flowgate store ...        inspect the outbox store, or recover a damaged one
//	flowgate rules test ...   replay recorded readings through rules
//	flowgate version          print the version
package main

import (
	"fmt"
	"io"
	"os"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `flowgate: an edge-to-cloud IoT gateway

Usage:
  flowgate run -c FILE      run the gateway with the config FILE
  flowgate check -c FILE    validate FILE and every file it references;
                            prints FILE:LINE:COL: message per problem, exit 1 if any
  flowgate passwd           read a password on stdin, print its bcrypt hash
                            for a device's password_hash
  flowgate demo [-c FILE]   run the gateway, a stand-in cloud broker and
                            simulated devices together (what 'make run' does)
  flowgate store check|quarantine|salvage -c FILE
                            inspect the outbox store, or recover a damaged one
  flowgate rules test -r RULES.yaml -i READINGS.jsonl [-expect EXPECTED.jsonl]
                            replay readings through rules on a virtual clock
                            and print the notable events (or the difference)
  flowgate version          print the version

Run 'flowgate COMMAND -h' for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run dispatches a command line and returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stderr)
	case "check":
		return cmdCheck(args[1:], stdout, stderr)
	case "passwd":
		return cmdPasswd(args[1:], stdin, stdout, stderr)
	case "demo":
		return cmdDemo(args[1:], stdout, stderr)
	case "store":
		return cmdStore(args[1:], stdout, stderr)
	case "rules":
		return cmdRules(args[1:], stdout, stderr)
	case "version", "-version", "--version":
		if len(args) > 1 {
			fmt.Fprintln(stderr, "Usage: flowgate version\n\nPrints the version of this binary.")
			return exitCode(args[1])
		}
		fmt.Fprintln(stdout, "flowgate", version)
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "flowgate: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

// exitCode is 0 for a request for help, 2 for any other stray argument.
func exitCode(arg string) int {
	if arg == "-h" || arg == "-help" || arg == "--help" {
		return 0
	}
	return 2
}
