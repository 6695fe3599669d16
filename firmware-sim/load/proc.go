package load

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"time"
)

// ProcStats is what was sampled of a process (the broker under test) from
// Linux's /proc while the load ran.
type ProcStats struct {
	Samples    int
	RSSMax     int64         // bytes, largest VmRSS seen
	RSSLast    int64         // bytes, the last sample
	RSSMean    int64         // bytes
	CPU        time.Duration // user + system time used between the first and last sample
	firstTicks int64
}

// ReadRSS is the resident set size (VmRSS) of process pid in bytes.
func ReadRSS(pid int) (int64, error) { return ReadStatus(pid, "VmRSS") }

// ReadStatus is a field counted in kB of /proc/PID/status, in bytes:
// VmRSS, or its parts RssAnon (heap, stacks) and RssFile (mapped files,
// the binary among them).
func ReadStatus(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("load: %w", err)
	}
	return parseStatusKB(b, field)
}

// parseVmRSS reads "VmRSS:   13312 kB" out of a /proc/PID/status file.
func parseVmRSS(status []byte) (int64, error) { return parseStatusKB(status, "VmRSS") }

// parseStatusKB reads "field:   13312 kB" out of a /proc/PID/status file.
func parseStatusKB(status []byte, field string) (int64, error) {
	key := []byte("\n" + field + ":")
	i := bytes.Index(status, key)
	if i < 0 {
		return 0, fmt.Errorf("load: no %s in /proc status", field)
	}
	line := status[i+len(key):]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	f := bytes.Fields(line)
	if len(f) != 2 || string(f[1]) != "kB" {
		return 0, fmt.Errorf("load: %s line %q", field, line)
	}
	kb, err := strconv.ParseInt(string(f[0]), 10, 64)
	if err != nil || kb < 0 {
		return 0, fmt.Errorf("load: %s line %q", field, line)
	}
	return kb << 10, nil
}

// cpuTicks is a process's user + system time in clock ticks (1/100 s on
// Linux), from /proc/PID/stat.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("load: %w", err)
	}
	return parseStatTicks(b)
}

// parseStatTicks reads utime and stime (fields 14 and 15) from a
// /proc/PID/stat line; the command name in parentheses may hold spaces.
func parseStatTicks(stat []byte) (int64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("load: malformed /proc stat")
	}
	f := bytes.Fields(stat[i+1:])
	// After ")": state(3) ppid(4) ... utime(14) stime(15): indexes 11, 12.
	if len(f) < 13 {
		return 0, fmt.Errorf("load: malformed /proc stat")
	}
	u, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	s, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil || u < 0 || s < 0 {
		return 0, fmt.Errorf("load: malformed /proc stat")
	}
	return u + s, nil
}

// sampleProc samples pid every interval until ctx ends, then returns what
// it saw. The first sample is taken at once.
func sampleProc(ctx context.Context, pid int, interval time.Duration) (ProcStats, error) {
	var st ProcStats
	var sum int64
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		rss, err := ReadRSS(pid)
		if err != nil {
			return st, err
		}
		ticks, err := cpuTicks(pid)
		if err != nil {
			return st, err
		}
		if st.Samples == 0 {
			st.firstTicks = ticks
		}
		st.Samples++
		sum += rss
		st.RSSMax, st.RSSLast, st.RSSMean = max(st.RSSMax, rss), rss, sum/int64(st.Samples)
		st.CPU = time.Duration(ticks-st.firstTicks) * 10 * time.Millisecond
		select {
		case <-ctx.Done():
			return st, nil
		case <-t.C:
		}
	}
}
