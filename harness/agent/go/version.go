package main

// checkoutVersion: for an agent built against a nats.go checkout (harness/targets/nats_go.py,
// `nats.go@PATH`), the checkout's tag or Go pseudo-version, set at build time with
// -ldflags "-X main.checkoutVersion=..."; a release's version comes from the build info.
var checkoutVersion = ""
