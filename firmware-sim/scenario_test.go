package sim

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowgate/flowgate/uplink/uplinktest"
)

// timeTolerance is how far an event's time at the cloud may be from the
// truth's: none beyond the payload's millisecond resolution, since both
// are simulated event time (the gateway's rules run on the devices'
// timestamps, not on its clock).
const timeTolerance = time.Millisecond

// The scenario tests run the real flowgate binary with the shipped
// scenario config (only its ports, store and file paths adjusted), a
// stand-in cloud (mosquitto), and the scenario's devices through Runner at
// high speed, then compare what the cloud received with the scenario's
// ground truth: every expected event must arrive (recall 1.0) and nothing
// else (precision 1.0).
func TestScenarioFacility(t *testing.T) { runScenario(t, "facility", 6*time.Hour, 1800) }

func TestScenarioColdchain(t *testing.T) { runScenario(t, "coldchain", 12*time.Hour, 3600) }

func TestScenarioFleet(t *testing.T) { runScenario(t, "fleet", 12*time.Hour, 2400) }

func runScenario(t *testing.T, name string, d time.Duration, speed float64) {
	cloud := uplinktest.StartMosquitto(t)
	got := uplinktest.Subscribe(t, cloud.URL(), "flowgate/#")
	mqttAddr, httpAddr := uplinktest.FreeAddr(t), uplinktest.FreeAddr(t)
	gw := startGateway(t, scenarioConfig(t, name, cloud.URL(), mqttAddr, httpAddr), httpAddr)

	plan, err := NewPlan(name, Options{Seed: 1, Start: DefaultStart(time.Now()), Duration: d})
	if err != nil {
		t.Fatal(err)
	}
	r := &Runner{Broker: "mqtt://" + mqttAddr, Plan: plan, Clock: &Clock{Start: plan.Start, Speed: speed},
		Secret: "flowgate-sim", QoS: 1, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	began := time.Now()
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	took := time.Since(began)
	if n := r.Stats.Sent.Load(); n != int64(plan.Count()) || r.Stats.Errors.Load() != 0 {
		t.Fatalf("sent %d of %d messages, %d errors", n, plan.Count(), r.Stats.Errors.Load())
	}
	waitCount(got, len(plan.Truth), 60*time.Second)
	gw.stop(t) // flushes the outbox: anything unexpected still queued arrives too

	var events []Truth
	for _, m := range got.Messages() {
		ev, err := FromEvent(m.Payload)
		if err != nil {
			t.Fatalf("cloud message on %s: %v", m.Topic, err)
		}
		events = append(events, ev)
	}
	missing, unexpected := Match(plan.Truth, events, timeTolerance)
	for i, m := range missing {
		if i < 20 {
			t.Errorf("missing: %s %s at %s %v", m.Type, m.Subject, m.Time.Format(time.RFC3339Nano), m.Fields)
		}
	}
	for i, u := range unexpected {
		if i < 20 {
			t.Errorf("unexpected: %s %s at %s", u.Type, u.Subject, u.Time.Format(time.RFC3339Nano))
		}
	}
	recall := float64(len(plan.Truth)-len(missing)) / float64(len(plan.Truth))
	precision := 1.0
	if len(events) > 0 {
		precision = float64(len(events)-len(unexpected)) / float64(len(events))
	}
	t.Logf("%s: %d devices, %v of simulated time in %v; %d raw messages in, %d notable events out: reduction %.1f:1; "+
		"recall %.3f (%d missing of %d), precision %.3f (%d unexpected), time tolerance %v",
		name, len(plan.Devices), d, took.Round(time.Millisecond), r.Stats.Sent.Load(), len(events),
		float64(r.Stats.Sent.Load())/float64(max(1, len(events))), recall, len(missing), len(plan.Truth),
		precision, len(unexpected), timeTolerance)
	if len(plan.Truth) < 10 {
		t.Errorf("only %d notable events planned: the scenario should exercise its rules", len(plan.Truth))
	}
}

// waitCount waits until c holds at least n messages or timeout passes.
func waitCount(c *uplinktest.Collector, n int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for len(c.Messages()) < n && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond) // polling with a deadline
	}
}

// scenarioConfig is configs/scenarios/{name}.yaml with its listeners,
// cloud url and store moved for the test, and its files made absolute.
func scenarioConfig(t *testing.T, name, cloudURL, mqttAddr, httpAddr string) string {
	t.Helper()
	dir, err := filepath.Abs("../configs/scenarios")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.NewReplacer(
		"listen: 127.0.0.1:11883", "listen: "+mqttAddr,
		"listen: 127.0.0.1:18080", "listen: "+httpAddr,
		"url: mqtt://127.0.0.1:18830", "url: "+cloudURL,
		"store_dir: ../../.flowgate/"+name+"-outbox", "store_dir: "+filepath.Join(t.TempDir(), "outbox"),
		"devices_file: ", "devices_file: "+dir+"/",
		"profiles_file: ", "profiles_file: "+dir+"/",
		"files: [../rules/", "files: ["+dir+"/../rules/",
	).Replace(string(b))
	path := filepath.Join(t.TempDir(), name+".yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

var (
	buildOnce sync.Once
	flowgate  string
	buildErr  error
	buildLog  []byte
)

// flowgateBinary builds the gateway once for this package's tests.
func flowgateBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "flowgate-sim-test")
		if err != nil {
			buildErr = err
			return
		}
		flowgate = filepath.Join(dir, "flowgate")
		cmd := exec.Command("go", "build", "-o", flowgate, "../gateway/cmd/flowgate")
		buildLog, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("building flowgate: %v\n%s", buildErr, buildLog)
	}
	return flowgate
}

// gatewayProc is a running flowgate.
type gatewayProc struct {
	cmd    *exec.Cmd
	log    *uplinktest.SyncBuffer
	exited chan struct{}
}

func startGateway(t *testing.T, cfg, httpAddr string) *gatewayProc {
	t.Helper()
	g := &gatewayProc{log: &uplinktest.SyncBuffer{}, exited: make(chan struct{})}
	g.cmd = exec.Command(flowgateBinary(t), "run", "-c", cfg)
	g.cmd.Stdout, g.cmd.Stderr = g.log, g.log
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.cmd.Wait(); close(g.exited) }()
	t.Cleanup(func() {
		_ = g.cmd.Process.Kill()
		<-g.exited
		if t.Failed() {
			t.Logf("flowgate log:\n%s", g.log.String())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + httpAddr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return g
			}
		}
		select {
		case <-g.exited:
			t.Fatalf("flowgate exited:\n%s", g.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("flowgate not healthy within 15s:\n%s", g.log.String())
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}
}

// stop sends SIGTERM and waits (bounded) for the exit.
func (g *gatewayProc) stop(t *testing.T) {
	t.Helper()
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("flowgate did not exit within 20s of SIGTERM")
	}
}
