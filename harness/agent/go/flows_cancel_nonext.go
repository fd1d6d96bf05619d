//go:build nojetstream || nonextcontext

package main

func init() {
	notApplicable["continue.iterate"] = "this nats.go release's pull iterator has no NextContext to cancel a waiting Next with (the agent uses it from v1.46.0)"
	notApplicable["consumer.pause"] = "the agent builds JetStream.PauseConsumer with NextContext's group (from v1.46.0)"
}
