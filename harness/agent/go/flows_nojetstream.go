//go:build nojetstream

package main

// Built for nats.go releases whose `jetstream` package lacks what flows_jetstream.go
// uses: the flows both APIs have run on the legacy JetStreamContext here (`api: jetstream`
// is not applicable); the ones only the jetstream package has are not applicable (reported
// in hello; the runner skips them).

func init() {
	register("objectstore.get", byAPI(apiLegacy, map[string]flowFunc{apiLegacy: legacyObjectstoreGet}))
	register("kv.get", byAPI(apiLegacy, map[string]flowFunc{apiLegacy: legacyKVGet}))
	register("kv.keys", byAPI(apiLegacy, map[string]flowFunc{apiLegacy: legacyKVKeys}))
	register("kv.watch", byAPI(apiLegacy, map[string]flowFunc{apiLegacy: legacyKVWatch}))
	for _, name := range []string{"next.iterate", "next.ordered"} {
		notApplicable[name] = "this nats.go release has no jetstream package with Consumer.Messages (the agent uses it from v1.32.0)"
	}
}
