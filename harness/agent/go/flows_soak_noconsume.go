//go:build nojetstream || noconsumeclosed

package main

func init() {
	notApplicable["soak.consume_drain"] = "this nats.go release's ConsumeContext has no Closed() to wait on after Drain() (the agent uses it from v1.37.0)"
}
