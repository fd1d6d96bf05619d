// KI-022: nats.go's ObjectStore reader (jetstream ObjectStore.Get, then Read) ignores the
// cancellation of its context while it waits for the next chunk: Read stays blocked until
// the deadline it took from the context when it began (or the 5 s default), then returns
// nats.ErrTimeout.
//
// Standalone: nats.go, a real nats-server and toxiproxy-server; no harness code.
package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"kiobjects"
	"kiservers"
)

const (
	bucket = "KI022"
	own    = 10 * time.Second // the caller's own deadline on the whole get
	bound  = 3 * time.Second  // a cancelled read must return within this (the harness's stuck bound)
)

type result struct {
	n   int
	err error
	at  time.Time
}

func main() {
	s := kiservers.Start()
	bg := context.Background()

	// The observer (a direct connection) puts a 4 MiB object; the client under test, through
	// the proxy, opens the bucket.
	sc := kiobjects.Put(s, bucket, 4<<20)
	data, store := sc.Data, sc.Store

	ctx, cancel := context.WithTimeout(bg, own)
	defer cancel()
	r, err := store.Get(ctx, "obj")
	if err != nil {
		kiservers.Inconclusive(err)
	}
	defer r.Close()
	first := make([]byte, 1024)
	if _, err := io.ReadFull(r, first); err != nil {
		kiservers.Inconclusive(fmt.Errorf("first read: %w", err))
	}
	// The transfer stalls (nothing more reaches the client), the reader waits for the next
	// chunk, and the caller gives up: cancel().
	if err := s.API("POST", "/proxies/nats/toxics", map[string]any{"name": "stall", "type": "bandwidth",
		"stream": "downstream", "attributes": map[string]any{"rate": 0}}); err != nil {
		kiservers.Inconclusive(err)
	}
	done := make(chan result, 1)
	go func() {
		b, err := io.ReadAll(r)
		done <- result{n: len(first) + len(b), err: err, at: time.Now()}
	}()
	time.Sleep(500 * time.Millisecond) // the reader is blocked on the next chunk
	select {
	case res := <-done:
		kiservers.Inconclusive(fmt.Errorf("the read ended before the cancel (%v, %d bytes)", res.err, res.n))
	default:
	}
	blocked := kiservers.BlockedIn("io.ReadAll")
	cancelled := time.Now()
	cancel()
	version := kiservers.NatsGoVersion()
	select {
	case res := <-done:
		if took := res.at.Sub(cancelled); took <= bound {
			kiservers.Finish(false, fmt.Sprintf("nats.go %s: the read returned %.2fs after cancel(): err=%v, %d of %d bytes",
				version, took.Seconds(), res.err, res.n, len(data)))
		}
	case <-time.After(bound):
	}
	res := <-done // it does return, at the deadline it took from the context
	kiservers.Finish(true, fmt.Sprintf("nats.go %s: the read returned %.2fs after cancel() (context deadline %s): err=%v, %d of %d bytes; "+
		"blocked in: %s", version, res.at.Sub(cancelled).Seconds(), own, res.err, res.n, len(data), blocked))
}
