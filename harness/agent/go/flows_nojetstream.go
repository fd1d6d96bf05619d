//go:build nojetstream

package main

// Built for nats.go releases whose `jetstream` package lacks what flows_jetstream.go
// uses: those flows are not applicable (reported in hello; the runner skips them).

func init() {
	for _, name := range []string{"objectstore.get", "kv.get", "kv.keys", "kv.watch", "next.iterate", "next.ordered"} {
		notApplicable[name] = "this nats.go release has no jetstream package with ObjectStore, KeyValue and Consumer.Messages (the agent uses it from v1.32.0)"
	}
}
