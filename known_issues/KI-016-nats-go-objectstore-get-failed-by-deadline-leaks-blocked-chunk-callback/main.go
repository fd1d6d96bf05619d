// KI-016: nats.go's ObjectStore.Get whose context expires while the ordered consumer's
// create reply is lost returns the context's error, yet the chunk subscription it made
// stays: its message callback blocks forever writing to a pipe nobody reads, and that
// goroutine (and the subscription's memory) outlives nc.Close().
//
// Standalone: nats.go, a real nats-server and toxiproxy-server; no harness code.
// go.mod pins the release found affected (v1.55.0); `go run -modfile=ok.mod .` runs v1.41.1,
// where the same steps leave nothing.
package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"kiobjects"
	"kiservers"
)

const bucket = "KI016"

type result struct {
	n   int
	err error
	at  time.Duration
}

func main() {
	s := kiservers.Start()
	ctx := context.Background()

	// The observer (a direct connection) puts a 1 MiB object and watches the bucket's stream;
	// the client under test, through the proxy, is configured to notice a dead link and reconnect.
	sc := kiobjects.Put(s, bucket, 1<<20, nats.ReconnectWait(250*time.Millisecond), nats.MaxReconnects(-1),
		nats.PingInterval(time.Second), nats.MaxPingsOutstanding(2))
	stream, nc, store := sc.Stream, sc.NC, sc.Store

	// Replies to the client are held back 0.5 s, so the consumer-create reply is still in the
	// proxy when the consumer shows up on the server.
	if err := s.API("POST", "/proxies/nats/toxics", map[string]any{"name": "hold", "type": "latency",
		"stream": "downstream", "attributes": map[string]any{"latency": 500}}); err != nil {
		kiservers.Inconclusive(err)
	}
	done := make(chan result, 1)
	t0 := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // a careful caller's deadline
		defer cancel()
		r, err := store.Get(ctx, "obj")
		if err != nil {
			done <- result{err: err, at: time.Since(t0)}
			return
		}
		defer r.Close()
		b, err := io.ReadAll(r)
		done <- result{n: len(b), err: err, at: time.Since(t0)}
	}()

	// The moment: the object's ordered consumer exists on the server; its create reply has not
	// reached the client. Drop the link (the held reply is lost with it), restore it 1.5 s later.
	end := time.Now().Add(10 * time.Second)
	for {
		info, err := stream.Info(ctx)
		if err == nil && info.State.Consumers > 0 {
			break
		}
		select {
		case r := <-done:
			kiservers.Inconclusive(fmt.Errorf("Get ended (%v, %d bytes) before its consumer was seen", r.err, r.n))
		default:
		}
		if time.Now().After(end) {
			kiservers.Inconclusive(fmt.Errorf("no consumer on OBJ_%s within 10s", bucket))
		}
		time.Sleep(2 * time.Millisecond)
	}
	cut := time.Since(t0)
	s.API("POST", "/proxies/nats", map[string]any{"enabled": false})
	time.Sleep(1500 * time.Millisecond)
	s.API("DELETE", "/proxies/nats/toxics/hold", nil)
	s.API("POST", "/proxies/nats", map[string]any{"enabled": true})

	version := kiservers.NatsGoVersion()
	var r result
	select {
	case r = <-done:
	case <-time.After(15 * time.Second):
		kiservers.Inconclusive(fmt.Errorf("Get did not return within 15s of the cut (its deadline is 10s)"))
	}
	before := kiservers.BlockedIn("(*obs).Get.func")
	nc.Close()
	time.Sleep(time.Second)
	after := kiservers.BlockedIn("(*obs).Get.func")
	left := !strings.HasPrefix(after, "(no goroutine")
	kiservers.Finish(left, fmt.Sprintf("nats.go %s: Get returned %.2fs after the link was cut at %.2fs (err=%v, %d bytes); "+
		"chunk callback goroutine before close: %s; 1s after nc.Close(): %s",
		version, (r.at-cut).Seconds(), cut.Seconds(), r.err, r.n, before, after))
}
