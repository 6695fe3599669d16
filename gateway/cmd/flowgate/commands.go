package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"golang.org/x/term"

	"github.com/flowgate/flowgate/devices"
	"github.com/flowgate/flowgate/gateway"
	"github.com/flowgate/flowgate/gateway/config"
	"github.com/flowgate/flowgate/gateway/config/yamlpos"
)

// configFlag parses "-c FILE" for a command. When it returns false the
// command is over, with exit code code (0 after -h).
func configFlag(name, help string, args []string, stderr io.Writer, def string) (path string, code int, ok bool) {
	fs := flag.NewFlagSet("flowgate "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	p := fs.String("c", def, "config `FILE` (YAML)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: flowgate %s -c FILE\n\n%s\n\nFlags:\n", name, help)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return "", code, false
	}
	if *p == "" {
		fs.Usage()
		return "", 2, false
	}
	return *p, 0, true
}

// parseFlags parses a command's flags; false means stop with code: 0 after
// -h, 2 after a usage error. Commands take no arguments besides flags.
func parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0, false
	case err != nil:
		return 2, false
	case fs.NArg() > 0:
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2, false
	}
	return 0, true
}

// loadConfig loads a config and prints every problem as FILE:LINE:COL: msg.
func loadConfig(path string, stderr io.Writer) (*config.Config, bool) {
	cfg, err := config.Load(path, os.LookupEnv)
	if err != nil {
		var errs yamlpos.Errors
		if errors.As(err, &errs) {
			for _, e := range errs {
				fmt.Fprintln(stderr, e.Error())
			}
		} else {
			fmt.Fprintln(stderr, err)
		}
		return nil, false
	}
	return cfg, true
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	path, code, ok := configFlag("check", "Validate the config and every file it references without starting anything.\n"+
		"Each problem is printed as FILE:LINE:COL: message; the exit status is 1 if there is any.", args, stderr, "")
	if !ok {
		return code
	}
	if _, ok := loadConfig(path, stderr); !ok {
		return 1
	}
	fmt.Fprintln(stdout, "ok")
	return 0
}

func cmdRun(args []string, stderr io.Writer) int {
	path, code, ok := configFlag("run", "Run the gateway until SIGINT or SIGTERM; a second signal exits at once.\n"+
		"SIGHUP, or a change to a file the config reads (checked every gateway.reload_check),\n"+
		"reloads the devices, routes and rules; a config with errors is refused and logged.", args, stderr, "")
	if !ok {
		return code
	}
	cfg, ok := loadConfig(path, stderr)
	if !ok {
		return 1
	}
	log := newLogger(cfg.Log, stderr)
	ctx, stop := signalContext(log)
	defer stop()
	g, err := gateway.New(cfg, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	g.ReloadFrom(func() (*config.Config, error) { return config.Load(path, os.LookupEnv) })
	defer reloadOnHangup(g)()
	if err := g.Run(ctx); err != nil {
		log.Error("stopped with errors", "err", err)
		return 1
	}
	return 0
}

// signalContext is cancelled by the first SIGINT or SIGTERM; a second one
// ends the process at once.
func signalContext(log *slog.Logger) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			log.Info("shutting down; send the signal again to exit at once", "signal", s.String())
			cancel()
		case <-done:
			return
		}
		select {
		case <-sigs:
			log.Warn("second signal: exiting now")
			os.Exit(130)
		case <-done:
		}
	}()
	return ctx, func() { signal.Stop(sigs); close(done); cancel() }
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func cmdPasswd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("flowgate passwd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: flowgate passwd < password.txt\n\nReads one password (a line on stdin, or typed without echo on a terminal)\nand prints its bcrypt hash for a device's password_hash.")
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	pw, err := readPassword(stdin, stderr)
	if err != nil || len(pw) == 0 {
		fmt.Fprintln(stderr, "flowgate passwd: no password read", err)
		return 1
	}
	hash, err := devices.HashPassword(pw)
	if err != nil {
		fmt.Fprintln(stderr, "flowgate passwd:", err)
		return 1
	}
	fmt.Fprintln(stdout, hash)
	return 0
}

func readPassword(stdin io.Reader, stderr io.Writer) ([]byte, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, "password: ")
		defer fmt.Fprintln(stderr)
		return term.ReadPassword(int(f.Fd()))
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return []byte(strings.TrimRight(line, "\r\n")), nil
}

// reloadOnHangup reloads g on every SIGHUP until the returned function is
// called, which waits for a reload in progress.
func reloadOnHangup(g *gateway.Gateway) func() {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-hup:
				_ = g.Reload() // logged and counted by the gateway
			case <-done:
				return
			}
		}
	}()
	return func() { signal.Stop(hup); close(done); <-stopped }
}
