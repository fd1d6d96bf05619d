module ki014

go 1.23.0

require github.com/nats-io/nats.go v1.41.0

require (
	github.com/klauspost/compress v1.18.0 // indirect
	github.com/nats-io/nkeys v0.4.9 // indirect
	github.com/nats-io/nuid v1.0.1 // indirect
	golang.org/x/crypto v0.31.0 // indirect
	golang.org/x/sys v0.28.0 // indirect
	golang.org/x/text v0.23.0 // indirect
	kiobjects v0.0.0
	kiservers v0.0.0
)

replace kiservers => ../_servers_go

replace kiobjects => ../_objects_go
