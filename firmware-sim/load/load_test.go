package load

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/uplink/uplinktest"
)

func testConfig(addr string) Config {
	c := Defaults()
	c.Broker = addr
	c.Duration = 0
	c.Drain = 2 * time.Second
	c.DrainMax = 20 * time.Second
	return c
}

// TestRunQoS1 drives a real mosquitto: every message sent is acknowledged
// and reaches both subscribers once, and the figures hang together.
func TestRunQoS1(t *testing.T) {
	m := uplinktest.StartMosquitto(t, "max_inflight_messages 100")
	c := testConfig(m.Addr())
	c.Publishers, c.Subscribers, c.Count, c.Inflight = 4, 2, 2003, 8
	c.PID = os.Getpid() // this process: something to sample that surely runs
	c.SampleEvery = 5 * time.Millisecond
	res, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 2003 || res.Acked != 2003 {
		t.Errorf("sent %d, acked %d; want 2003 each", res.Sent, res.Acked)
	}
	if res.Expected != 4006 || res.Received != 4006 || res.Lost != 0 || res.Duplicates != 0 || res.Unstamped != 0 {
		t.Errorf("expected %d received %d lost %d dups %d unstamped %d; want 4006 4006 0 0 0",
			res.Expected, res.Received, res.Lost, res.Duplicates, res.Unstamped)
	}
	if len(res.Errors) > 0 {
		t.Errorf("errors: %v", res.Errors)
	}
	if !(res.P50 > 0 && res.P50 <= res.P99 && res.P99 <= res.P999 && res.P999 <= res.Max && res.Max < 20*time.Second) {
		t.Errorf("latencies p50 %v p99 %v p999 %v max %v are not ordered and positive", res.P50, res.P99, res.P999, res.Max)
	}
	if res.SendRate() <= 0 || res.AckRate() <= 0 || res.RecvRate() <= 0 || res.SendTime > res.AckTime+time.Second {
		t.Errorf("rates %v %v %v over %v %v", res.SendRate(), res.AckRate(), res.RecvRate(), res.SendTime, res.AckTime)
	}
	if b := res.Broker; b == nil || b.Samples < 1 || b.RSSMax < 1<<20 || b.RSSLast > b.RSSMax || b.RSSMean > b.RSSMax {
		t.Errorf("process samples %+v", res.Broker)
	}
	var out strings.Builder
	res.Print(&out)
	for _, want := range []string{"sent ", "acked ", "received ", "lost ", "latency ", "RSS max"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

// TestRunCountsLosses: a subscriber that sees only one publisher's topic
// is short of the other's messages, and says so.
func TestRunCountsLosses(t *testing.T) {
	m := uplinktest.StartMosquitto(t)
	c := testConfig(m.Addr())
	c.Publishers, c.Subscribers, c.Count = 2, 1, 400
	c.Topic, c.SubTopic = "load/{i}/x", "load/0/x"
	c.Drain = 300 * time.Millisecond
	res, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 400 || res.Received != 200 || res.Lost != 200 {
		t.Errorf("sent %d received %d lost %d; want 400 200 200", res.Sent, res.Received, res.Lost)
	}
}

// TestRunPacedQoS0: at a set rate the run cannot finish faster than the
// rate allows, and at QoS 0 every message counts as acknowledged.
func TestRunPacedQoS0(t *testing.T) {
	m := uplinktest.StartMosquitto(t)
	c := testConfig(m.Addr())
	c.Publishers, c.Subscribers, c.Count, c.Rate, c.QoS, c.SubQoS = 3, 1, 300, 1000, 0, 0
	res, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 300 || res.Acked != 300 {
		t.Errorf("sent %d acked %d; want 300", res.Sent, res.Acked)
	}
	// The last of 100 messages per publisher is due 99 intervals of 3 ms
	// after the start (publisher 0's first is at the start).
	if res.SendTime < 290*time.Millisecond {
		t.Errorf("300 messages at 1000/s sent in %v", res.SendTime)
	}
	if res.Received != 300 { // loopback and a subscriber that keeps up lose nothing, even at QoS 0
		t.Errorf("received %d of 300", res.Received)
	}
}

// With a warmup, the messages sent after it make the steady figures too:
// about half of a paced run whose first half is warmup.
func TestRunWarmup(t *testing.T) {
	m := uplinktest.StartMosquitto(t)
	c := testConfig(m.Addr())
	c.Publishers, c.Subscribers, c.Rate, c.Duration, c.Warmup = 2, 1, 1000, 600*time.Millisecond, 300*time.Millisecond
	res, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	st := res.Steady
	if res.Received == 0 || st.Count < res.Received*3/10 || st.Count > res.Received*7/10 {
		t.Errorf("%d of %d received were sent after the warmup; want about half", st.Count, res.Received)
	}
	if !(st.P50 > 0 && st.P50 <= st.P99 && st.P99 <= st.P999 && st.P999 <= st.Max && st.Max <= res.Max) {
		t.Errorf("steady p50 %v p99 %v p999 %v max %v (all: max %v)", st.P50, st.P99, st.P999, st.Max, res.Max)
	}
	var out strings.Builder
	res.Print(&out)
	if !strings.Contains(out.String(), "steady  p50") {
		t.Errorf("report lacks the steady latency:\n%s", out.String())
	}
}

// TestRunDurationAndCredentials: a broker that wants a password gets the
// one given (with {id} as the username), refuses a wrong one, and a run
// bounded by duration stops on time.
func TestRunDurationAndCredentials(t *testing.T) {
	pw, err := exec.LookPath("mosquitto_passwd")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("mosquitto_passwd not installed (CI is set)")
		}
		t.Skip("mosquitto_passwd not installed")
	}
	file := filepath.Join(t.TempDir(), "passwd")
	for i, u := range []string{"dev-0", "dev-1"} {
		args := []string{"-b", file, u, "s3cret"}
		if i == 0 {
			args = append([]string{"-c"}, args...)
		}
		if out, err := exec.Command(pw, args...).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
		}
	}
	m := uplinktest.StartMosquitto(t, "allow_anonymous false", "password_file "+file)
	c := testConfig(m.Addr())
	c.Publishers, c.Subscribers, c.Duration = 2, 0, 300*time.Millisecond
	c.IDPrefix, c.Username, c.Password = "dev-", "{id}", "s3cret"
	start := time.Now()
	res, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); res.Sent == 0 || res.Acked != res.Sent || took > 10*time.Second {
		t.Errorf("sent %d acked %d in %v", res.Sent, res.Acked, took)
	}
	if res.SendTime < 250*time.Millisecond || res.SendTime > 5*time.Second {
		t.Errorf("a 300 ms run published for %v", res.SendTime)
	}
	c.Password = "wrong"
	if _, err := Run(context.Background(), c); err == nil || !strings.Contains(err.Error(), "CONNACK return code 5") {
		t.Errorf("wrong password: err %v, want a refusal with code 5", err)
	}
}

func TestValidate(t *testing.T) {
	bad := []func(*Config){
		func(c *Config) { c.Publishers = 0 },
		func(c *Config) { c.Warmup = -time.Second },
		func(c *Config) { c.Duration, c.Warmup = time.Second, time.Second },
		func(c *Config) { c.QoS = 2 },
		func(c *Config) { c.Size = 10 },
		func(c *Config) { c.Count, c.Duration = 0, 0 },
		func(c *Config) { c.Inflight = 0 },
		func(c *Config) { c.Topic = "a/+/b" },
		func(c *Config) { c.Broker = "tls://x:1" },
		func(c *Config) { c.Rate = -1 },
	}
	for i, f := range bad {
		c := Defaults()
		f(&c)
		if c.Validate() == nil {
			t.Errorf("case %d: accepted %+v", i, c)
		}
	}
	c := Defaults()
	if err := c.Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

// TestRunPublishersCannotConnect: when the subscribers connect but the
// publishers' broker is not there (a gateway that failed to start), Run
// returns the connection error at once; it used to wait forever for the
// subscribers' receive loops, which never started, and ignored SIGTERM.
func TestRunPublishersCannotConnect(t *testing.T) {
	m := uplinktest.StartMosquitto(t)
	c := testConfig(closedAddr(t))
	c.SubBroker = m.Addr()
	c.Publishers, c.Subscribers, c.Count = 2, 2, 10
	c.ConnectTimeout = 2 * time.Second
	done := make(chan error, 1)
	go func() {
		_, err := Run(context.Background(), c)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Run succeeded with no broker for the publishers")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return with no broker for the publishers")
	}
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}
