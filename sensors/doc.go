// Package sensors reads the sensors wired to the gateway itself:
// environment (BME280/BMP280 or AHT20 over I²C), RFID (MFRC522 over SPI) and GPS
// (NMEA 0183 over a serial port), through periph.io, with a simulated
// source for each so that a laptop runs the same configuration.
//
// The package is the top of a small tree, in periph's shape: here are the
// canonical Reading, the small Sensor interface and what runs sensors (the
// Supervisor and the registry); one package per chip or source sits below
// (sensors/bme280, sensors/mfrc522, sensors/gps, sensors/sim) and knows
// nothing of this one; fakes for tests live in sensors/sensorstest.
//
// # From configuration to readings
//
// A Spec is one configured sensor. New looks its driver up in the registry
// (registry.go, the one place that maps driver names to constructors) and
// returns a Source, which opens the sensor on demand. Opening borrows buses,
// ports and pins from a Hardware, which the composition root implements:
// only it calls periph's host.Init, i2creg.Open, spireg.Open,
// gpioreg.ByName and serial.Open, and only for sensors that are not
// simulated.
//
//	src, err := sensors.New(spec, sensors.Deps{Hardware: hw, Clock: sensors.RealClock()})
//	sup := &sensors.Supervisor{Name: spec.Name, Open: src.Open, Interval: spec.PollInterval,
//		Clock: sensors.RealClock(), Log: log, Emit: func(r sensors.Reading) { … }}
//	err = sup.Run(ctx)
//
// The Supervisor reads the sensor every poll interval. A failure closes the
// sensor and opens it again after a backoff that doubles up to a ceiling;
// after a few failures in a row the sensor is reported failing (Report and
// Stats) and keeps being retried, so it comes back by itself when the
// hardware does, without holding up the other sensors or the gateway.
//
// # Canonical readings
//
// Reading.AppendJSON writes the payload other components rely on, with
// calibration offsets already applied:
//
//	env   {"temperature": °C, "pressure": hPa, "humidity": %RH}   (no humidity from a BMP280,
//	       no pressure from an AHT20)
//	gps   {"fix": true, "lat": °, "lon": °, "altitude": m, "speed": m/s, "course": °,
//	       "satellites": n, "hdop": x, "receiver_time": RFC 3339}  (no position without a fix)
//	rfid  {"tag": "04A1B2C3", "reader": "dock-door"}
package sensors
