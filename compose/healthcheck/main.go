// Command healthcheck is the container healthcheck of the compose stack.
//
// The official nats and toxiproxy images are built FROM scratch: no shell, no curl,
// and nats-server has no health subcommand. This static binary (CGO_ENABLED=0,
// standard library only) is mounted read-only into both containers and exits 0 when
// every URL given answers 2xx within the timeout, 1 otherwise.
//
//	healthcheck http://127.0.0.1:8222/healthz?js-enabled-only=true
package main

import (
	"fmt"
	"net/http"
	"os"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: healthcheck URL...")
		os.Exit(2)
	}
	client := &http.Client{Timeout: 2 * time.Second}
	for _, url := range os.Args[1:] {
		resp, err := client.Get(url)
		if err != nil {
			fmt.Fprintln(os.Stderr, "unhealthy:", err)
			os.Exit(1)
		}
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			fmt.Fprintf(os.Stderr, "unhealthy: %s answered %s\n", url, resp.Status)
			os.Exit(1)
		}
	}
}
