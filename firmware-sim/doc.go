// Package sim is simulated device firmware: fleets of devices that connect
// to an MQTT broker (the gateway's, or any other) and publish what real
// devices would, in simulated time, deterministically for a given seed,
// together with the ground truth of the notable events their data implies.
//
// A Scenario (fleet, coldchain, facility) plans everything its devices will
// send before the first byte leaves: each device's messages in time order
// (a Plan) and, from the simulator's own knowledge of what it made them do,
// the notable events the shipped rules (configs/rules/) should find in
// them (the Truth). The ground truth is never computed by running the
// gateway's rules engine: trackers in truth.go follow each device's own
// values.
//
// A Runner plays a Plan against a broker on a Clock that runs -speed times
// faster than the wall clock: timestamps in payloads are simulated time,
// and the gateway's rules run on the payload's time, so a day of fleet
// time can run in seconds.
package sim
