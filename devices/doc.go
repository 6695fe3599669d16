// Package devices knows the MQTT devices that connect to the gateway: who they
// are (the registry: identity, bcrypt credentials, topic prefix, allowed
// subscriptions), what they may publish and subscribe to (the ACL), and how
// their payloads become canonical events (the normalizer).
//
// It has no MQTT broker in it: gateway/ adapts mochi's hooks to the plain
// methods here, so the rules are testable without a network.
package devices
