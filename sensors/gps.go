package sensors

import (
	"context"
	"io"
	"slices"

	"github.com/flowgate/flowgate/sensors/gps"
	"github.com/flowgate/flowgate/sensors/sim"
)

// gpsSensor reads fixes from an NMEA receiver, real or simulated.
type gpsSensor struct {
	rcv   *gps.Receiver
	port  io.Closer                             // nil when simulated
	flush interface{ ResetInputBuffer() error } // set when reads are spaced out: drop stale input first
	cal   Calibration
	clock Clock
}

func (s *gpsSensor) Read(ctx context.Context) (Reading, error) {
	if s.flush != nil {
		if err := s.flush.ResetInputBuffer(); err != nil {
			return Reading{}, err
		}
		s.rcv.Resync()
	}
	f, err := s.rcv.Next(ctx)
	if err != nil {
		return Reading{}, err
	}
	r := Reading{Kind: KindGPS, Time: s.clock.Now(), Fix: Fix{Valid: f.Valid, Lat: f.Lat, Lon: f.Lon,
		Altitude: f.Altitude, Speed: f.Speed, Course: f.Course, Satellites: f.Satellites, HDOP: f.HDOP,
		ReceiverTime: f.Time}}
	s.cal.apply(&r)
	return r, nil
}

func (s *gpsSensor) Close() error {
	if s.port == nil {
		return nil
	}
	return s.port.Close()
}

func openGPS(src *Source) (Sensor, error) {
	s := src.spec
	clock := src.deps.Clock
	sensor := &gpsSensor{cal: s.Calibration, clock: clock}
	if s.Simulated {
		track, err := sim.LoadTrack(s.Sim.Track)
		if err != nil {
			return nil, err
		}
		line := sim.NewNMEA(sim.NMEAOpts{Track: track, Speed: s.Sim.Speed, Now: clock.Now})
		sensor.rcv = gps.New(line, gps.Opts{Now: clock.Now, Counts: &src.nmea})
		return sensor, nil
	}
	port, err := src.deps.Hardware.Serial(s.Port, s.Baud)
	if err != nil {
		return nil, err
	}
	sensor.port = port
	sensor.rcv = gps.New(port, gps.Opts{Silence: s.ReadTimeout, Now: clock.Now, Counts: &src.nmea})
	if f, ok := port.(interface{ ResetInputBuffer() error }); ok && s.PollInterval > 0 {
		sensor.flush = f
	}
	return sensor, nil
}

// bauds are the rates GNSS receivers speak.
var bauds = []int{4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800}

// checkGPS checks a receiver's port and simulation.
func checkGPS(ps *problems, s Spec) {
	if !s.Simulated && s.Port == "" {
		ps.add("port", "required: the receiver's serial port, e.g. /dev/serial0")
	}
	if !slices.Contains(bauds, s.Baud) {
		ps.add("baud", "%d must be one of %v", s.Baud, bauds)
	}
	if s.ReadTimeout < 0 {
		ps.add("read_timeout", "must not be negative (0: wait for the receiver forever)")
	}
	switch {
	case s.Simulated && s.Sim.Track == "":
		ps.add("sim.track", "required: a GeoJSON file with the LineString to drive, relative to the config")
	case s.Sim.Track != "":
		if _, err := sim.LoadTrack(s.Sim.Track); err != nil {
			ps.add("sim.track", "%v", err)
		}
	}
	if s.Sim.Speed <= 0 {
		ps.add("sim.speed", "must be positive (metres per second)")
	}
}
