module nats-chaos/compose/healthcheck

go 1.21
