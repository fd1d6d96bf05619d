module kiobjects

go 1.21

require (
	github.com/nats-io/nats.go v1.32.0
	kiservers v0.0.0
)
