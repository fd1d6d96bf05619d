//go:build nojetstream || noconsumeclosed

package main

func init() {
	notApplicable["next.consume"] = "this nats.go release's ConsumeContext has no Closed() to wait on (the agent uses it from v1.37.0)"
}
