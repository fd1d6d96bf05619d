# compose/compose.mk — the Docker Compose targets, included at the end of the Makefile.
# The logic is in scripts/compose-stack.sh; see compose/README.md.
COMPOSE_PROJECT ?= nats-chaos
export COMPOSE_PROJECT

.PHONY: compose-images compose-up compose-down test-compose compose-clean

## compose-images: build the local FROM-scratch nats and toxiproxy images (offline; needs Go)
compose-images: setup
	@bash scripts/compose-stack.sh images

## compose-up: bring up the stack (project $(COMPOSE_PROJECT)) on free loopback ports, leave it running;
##   CLUSTER=3 brings up the 3-node cluster (docker-compose.cluster.yml) instead
compose-up: setup
	@bash scripts/compose-stack.sh up

## compose-down: take the stack down: containers, network, volume (and a podman service compose-up started)
compose-down:
	@bash scripts/compose-stack.sh down

## test-compose: run tests/compose against real stacks (podman service if no Docker), clean up everything
test-compose: setup
	@bash scripts/compose-stack.sh test

## compose-clean: remove the compose build context and the podman state (image store included)
compose-clean: compose-down
	@bash scripts/podman-service.sh stop
	rm -rf compose/.build .run/podman .run/compose
