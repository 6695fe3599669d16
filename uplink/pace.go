package uplink

import "time"

// pacer is a token bucket in two currencies, events and bytes, refilled at
// Options.ReplayRate and Options.ReplayBytes per second. It holds at most a
// twentieth of a second's worth (but always room for one event), so a paced
// replay goes out smoothly rather than in one-second bursts. A zero rate
// does not limit.
type pacer struct {
	rate, byteRate  float64 // per second; 0: unlimited
	events, bytes   float64 // available now
	maxEv, maxBytes float64
	at              time.Time // when events and bytes were last brought up to date
	lastSize        int       // the size of the last record asked about
}

// burst is the share of a second's allowance the bucket can hold.
const burst = 20

func newPacer(rate int, byteRate int64) pacer {
	p := pacer{rate: float64(rate), byteRate: float64(byteRate)}
	p.maxEv = max(p.rate/burst, 1)
	p.maxBytes = p.byteRate / burst
	p.events, p.bytes = p.maxEv, p.maxBytes
	return p
}

func (p *pacer) refill(now time.Time) {
	if p.at.IsZero() {
		p.at = now
		return
	}
	dt := now.Sub(p.at).Seconds()
	if dt <= 0 {
		return
	}
	p.at = now
	p.events = min(p.events+dt*p.rate, p.maxEv)
	p.bytes = min(p.bytes+dt*p.byteRate, p.maxBytes)
}

// ready reports whether a record of size bytes may go now. A record larger
// than the bucket goes once the bucket is full, and leaves it in debt.
func (p *pacer) ready(size int, now time.Time) bool {
	p.refill(now)
	p.lastSize = size
	okEv := p.rate == 0 || p.events >= 1
	okBytes := p.byteRate == 0 || p.bytes >= min(float64(size), p.maxBytes)
	return okEv && okBytes
}

// take spends the allowance of one record of size bytes.
func (p *pacer) take(size int, now time.Time) {
	p.refill(now)
	if p.rate > 0 {
		p.events--
	}
	if p.byteRate > 0 {
		p.bytes -= float64(size)
	}
}

// readyAt is when the record last asked about may go, if ready said no;
// zero if it may go now or pacing is off.
func (p *pacer) readyAt(now time.Time) time.Time {
	p.refill(now)
	var wait float64
	if p.rate > 0 && p.events < 1 {
		wait = (1 - p.events) / p.rate
	}
	if need := min(float64(p.lastSize), p.maxBytes); p.byteRate > 0 && p.bytes < need {
		wait = max(wait, (need-p.bytes)/p.byteRate)
	}
	if wait == 0 {
		return time.Time{}
	}
	return now.Add(time.Duration(wait*float64(time.Second)) + time.Millisecond)
}
