//go:build nojetstream

package main

// Built for releases whose jetstream package lacks what flows_apis.go and
// flows_cancel_jetstream.go use: those flows are not applicable (reported in hello).
func init() {
	for _, name := range []string{"kv.history", "kv.purge", "kv.watch_history", "objectstore.info", "objectstore.list",
		"objectstore.delete", "objectstore.watch", "consumer.info", "continue.kv_get", "continue.objectstore_get"} {
		notApplicable[name] = "this nats.go release has no jetstream package with KeyValue, ObjectStore and Consumer (the agent uses it from v1.32.0)"
	}
}
