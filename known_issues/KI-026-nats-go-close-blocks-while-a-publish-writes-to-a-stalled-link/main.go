// KI-026: nats.go's Close() does not return while the link towards the server is stalled
// and a publisher is writing: the connection's lock (nc.mu) is held across the socket write
// — by Publish once its buffer is full, or by the flusher — and that write blocks until the
// stall ends or FlusherTimeout (a minute by default) passes. Close() waits for the lock, and
// so does everything else that takes it: the ping timer (the stale-connection check does
// not fire), the read loop's PONG, IsConnected(), Stats().
//
// Standalone: nats.go, a real nats-server and toxiproxy-server; no harness code.
package main

import (
	"flag"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"kiservers"
)

const bound = 3 * time.Second // close must return within this (the harness's stuck bound)

func main() {
	hold := flag.Duration("hold", 8*time.Second, "how long the upstream stall holds after close() is called")
	flusher := flag.Duration("flusher-timeout", 0, "nats.FlusherTimeout for the client (0: the default, a minute)")
	flag.Parse()
	s := kiservers.Start()

	// The client under test, through the proxy, with pings that notice a dead link in ~3 s.
	disconnected := make(chan time.Time, 4)
	opts := []nats.Option{nats.PingInterval(time.Second), nats.MaxPingsOutstanding(2),
		nats.DisconnectErrHandler(func(*nats.Conn, error) { disconnected <- time.Now() }),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})}
	if *flusher > 0 {
		opts = append(opts, nats.FlusherTimeout(*flusher))
	}
	nc, err := nats.Connect(s.ProxyURL, opts...)
	if err != nil {
		kiservers.Inconclusive(err)
	}
	if err := nc.Flush(); err != nil {
		kiservers.Inconclusive(err)
	}

	// Nothing the client sends reaches the server (bandwidth 0 towards it); what the server
	// sends still flows. A publisher sends 4 KiB messages until its write blocks.
	if err := s.API("POST", "/proxies/nats/toxics", map[string]any{"name": "stall", "type": "bandwidth",
		"stream": "upstream", "attributes": map[string]any{"rate": 0}}); err != nil {
		kiservers.Inconclusive(err)
	}
	payload := make([]byte, 4096)
	var published atomic.Int64
	pubDone := make(chan error, 1)
	go func() {
		for i := 0; i < 100_000; i++ {
			if err := nc.Publish("ki026.x", payload); err != nil {
				pubDone <- err
				return
			}
			published.Add(1)
		}
		pubDone <- nil
	}()
	// The publisher is blocked: no progress for 0.5 s.
	for last, still := int64(-1), time.Now(); time.Since(still) < 500*time.Millisecond; time.Sleep(50 * time.Millisecond) {
		select {
		case err := <-pubDone:
			kiservers.Inconclusive(fmt.Errorf("the publisher ended before it blocked: %v", err))
		default:
		}
		if n := published.Load(); n != last {
			last, still = n, time.Now()
		}
	}
	blocked := kiservers.BlockedIn("main.main.func")

	// The application gives up on the connection: Close().
	closed := make(chan time.Time, 1)
	start := time.Now()
	go func() { nc.Close(); closed <- time.Now() }()
	version := kiservers.NatsGoVersion()
	select {
	case at := <-closed:
		kiservers.Finish(false, fmt.Sprintf("nats.go %s: close() returned in %.2fs during the stall (publisher blocked after %d messages)",
			version, at.Sub(start).Seconds(), published.Load()))
	case <-time.After(bound):
	}
	inClose := kiservers.BlockedIn("(*Conn).Close")
	// Heal after the hold: the held bytes go through, and Close() gets the lock.
	var at time.Time
	noticed := ""
	select {
	case at = <-closed:
	case <-time.After(*hold - bound):
		noticed = fmt.Sprintf("pings (1 s, 2 outstanding) noticed no dead link in %s", *hold)
		select {
		case <-disconnected:
			noticed = "the client noticed the dead link (disconnect handler)"
		default:
		}
		healed := time.Now()
		if err := s.API("DELETE", "/proxies/nats/toxics/stall", nil); err != nil {
			kiservers.Inconclusive(err)
		}
		at = <-closed
		noticed += fmt.Sprintf("; close() returned %.2fs after the heal", at.Sub(healed).Seconds())
	}
	kiservers.Finish(true, fmt.Sprintf("nats.go %s: close() NOT returned %s after it was called during an upstream stall "+
		"(publisher blocked after %d messages in: %s); close blocked in: %s; close() took %.2fs in all; %s",
		version, bound, published.Load(), blocked, inClose, at.Sub(start).Seconds(), noticed))
}
