package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/flowgate/flowgate/gateway/config"
	"github.com/flowgate/flowgate/uplink"
)

// `flowgate store`: look into the outbox store, and recover one the gateway
// cannot open. Every command reads the store without changing it, and
// refuses while a gateway holds it; salvage moves the damaged store aside
// (it never deletes it) and copies what it can read into a fresh one.

const storeUsage = `Usage: flowgate store COMMAND -c FILE

Inspect or recover the outbox store named by uplink.store_dir in FILE. Stop
the gateway first: every command refuses while it holds the store.

Commands:
  check        print the events queued per class, the quarantine and any
               damage found in the store's files; exit 1 if the store is
               damaged or cannot be opened
  quarantine   print the records set aside as unreadable, one JSON object
               per line: class, seq, accepted (when the header is readable)
               and the stored value in base64
  salvage      move the store to DIR.damaged-YYYYmmdd-HHMMSS (nothing is
               deleted), copy every record that can be read into a fresh
               store in DIR, in order, and print what was recovered

Run 'flowgate store COMMAND -h' for a command's flags.
`

func cmdStore(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, storeUsage)
		return 2
	}
	switch args[0] {
	case "check":
		return storeCommand(args, "Print what the store holds and any damage in its files; exit 1 if damaged.", stdout, stderr, storeCheck)
	case "quarantine":
		return storeCommand(args, "Print the quarantined records as JSON lines.", stdout, stderr, storeQuarantine)
	case "salvage":
		return storeCommand(args, "Move the store aside and copy every readable record into a fresh one.", stdout, stderr, storeSalvage)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, storeUsage)
		return 0
	default:
		fmt.Fprintf(stderr, "flowgate store: unknown command %q\n\n%s", args[0], storeUsage)
		return 2
	}
}

// storeCommand parses -c FILE, loads the config and runs do on its store
// directory with the configured classes.
func storeCommand(args []string, help string, stdout, stderr io.Writer,
	do func(dir string, classes []uplink.Class, stdout, stderr io.Writer) error) int {
	path, code, ok := configFlag("store "+args[0], help, args[1:], stderr, "")
	if !ok {
		return code
	}
	cfg, ok := loadConfig(path, stderr)
	if !ok {
		return 1
	}
	opts := cfg.UplinkOptions(nil)
	if cfg.Uplink.StoreDir == config.MemoryStore {
		fmt.Fprintf(stderr, "flowgate store: uplink.store_dir in %s is %q: there is no store on disk\n", path, config.MemoryStore)
		return 1
	}
	if err := do(opts.StoreDir, opts.Classes, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "flowgate store %s: %v\n", args[0], err)
		if !errors.Is(err, uplink.ErrStoreInUse) && args[0] != "salvage" {
			fmt.Fprintf(stderr, "To recover what can be read, stop the gateway and run: flowgate store salvage -c %s\n", path)
		}
		return 1
	}
	return 0
}

// errDamaged makes check exit 1 once it has printed what it found.
var errDamaged = errors.New("the store is damaged")

func storeCheck(dir string, classes []uplink.Class, stdout, _ io.Writer) error {
	c, err := uplink.CheckStore(dir, classes)
	fmt.Fprintf(stdout, "store %s\n", dir)
	if c.Method == "files" {
		fmt.Fprintln(stdout, "  (damaged: counted from its files directly, which is what salvage would recover)")
	}
	for _, cl := range c.Classes {
		fmt.Fprintf(stdout, "  %-12s %8d events %12d bytes\n", cl.Name, cl.Queued, cl.Bytes)
	}
	if err == nil {
		fmt.Fprintf(stdout, "  quarantined  %8d records\n", c.Quarantined)
	}
	for _, p := range c.Problems {
		fmt.Fprintf(stdout, "damaged: %s\n", p)
	}
	switch {
	case err != nil:
		return err
	case len(c.Problems) > 0:
		return errDamaged
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}

// quarantineLine is one quarantined record as `store quarantine` prints it.
type quarantineLine struct {
	Class    string     `json:"class,omitempty"`
	Seq      uint64     `json:"seq,omitempty"`
	Key      string     `json:"key,omitempty"` // hex, when the key is not a record's
	Accepted *time.Time `json:"accepted,omitempty"`
	Value    []byte     `json:"value"` // as stored: header and MQTT packet, base64
}

func storeQuarantine(dir string, _ []uplink.Class, stdout, _ io.Writer) error {
	enc := json.NewEncoder(stdout)
	return uplink.ReadStoreQuarantine(dir, func(q uplink.Quarantined) error {
		l := quarantineLine{Value: q.Value}
		if class, seq, ok := q.ClassSeq(); ok {
			l.Class, l.Seq = class, seq
		} else {
			l.Key = hex.EncodeToString(q.Key)
		}
		if at, ok := q.Accepted(); ok {
			l.Accepted = &at
		}
		return enc.Encode(l)
	})
}

// storeSalvage moves dir aside and salvages it into a fresh store, built in
// a staging directory and renamed to dir once complete, so that a gateway
// never starts on half a salvage.
func storeSalvage(dir string, classes []uplink.Class, stdout, stderr io.Writer) error {
	if err := uplink.CheckNotInUse(dir); err != nil {
		return err
	}
	stamp := time.Now().Format("20060102-150405")
	damaged, staging := dir+".damaged-"+stamp, dir+".salvaging-"+stamp
	for _, p := range []string{damaged, staging} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s already exists; try again in a second", p)
		}
	}
	if err := os.Rename(dir, damaged); err != nil {
		return fmt.Errorf("move the store aside: %w", err)
	}
	fmt.Fprintf(stdout, "moved the store to %s\n", damaged)
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rep, err := uplink.Salvage(damaged, staging, classes, log)
	if err == nil {
		err = os.Rename(staging, dir)
	}
	if err != nil {
		return fmt.Errorf("%w\nthe damaged store is kept in %s; what was salvaged so far is in %s", err, damaged, staging)
	}
	printSalvage(stdout, rep)
	fmt.Fprintf(stdout, "the fresh store is %s: start the gateway to deliver what was recovered.\n", dir)
	fmt.Fprintf(stdout, "the damaged store stays in %s until you delete it.\n", damaged)
	return nil
}

func printSalvage(w io.Writer, rep uplink.SalvageReport) {
	how := "read through Badger"
	if rep.Method == "files" {
		how = "read from the store's files directly"
	}
	fmt.Fprintf(w, "salvaged (%s):\n", how)
	var names []string
	for name := range rep.Recovered {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-12s %8d events recovered\n", name, rep.Recovered[name])
	}
	fmt.Fprintf(w, "  quarantine   %8d records carried over\n", rep.Quarantined)
	fmt.Fprintf(w, "  unreadable   %8d records set aside in the quarantine\n", rep.Unreadable)
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "damaged: %s\n", p)
	}
}
