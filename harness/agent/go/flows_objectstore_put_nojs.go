//go:build nojetstream

package main

// Built for releases whose jetstream package lacks ObjectStore: objectstore.put is not
// applicable there (reported in hello).
func init() {
	notApplicable["objectstore.put"] = "this nats.go release has no jetstream package with ObjectStore (the agent uses it from v1.32.0)"
}
