// Package gateway is Flowgate's composition root. It turns a validated
// config into running components (the embedded MQTT broker, the device
// registry and normalizer, the rules stage, the uplink, the HTTP server),
// wires them together, and stops them in order:
//
//  1. stop accepting device connections and publishes (close the broker),
//  2. wait for publishes already inside the pipeline to finish, for at most
//     half the shutdown timeout (a publish still blocked on a full uplink is
//     then let go unacknowledged, so its device sends it again later),
//  3. flush the uplink (wait for the cloud's PUBACKs) and disconnect,
//  4. stop the HTTP server,
//
// all within gateway.shutdown_timeout.
//
// Only this package opens the network, the broker and (later) hardware and
// the store; the packages it wires borrow what they are given.
package gateway
