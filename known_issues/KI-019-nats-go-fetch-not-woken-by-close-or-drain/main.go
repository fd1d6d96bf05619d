// KI-019: nats.go's jetstream Consumer.Fetch waiting for messages is not woken when the
// connection is closed (nc.Close) or drained (nc.Drain): its Messages() channel stays open
// until the fetch's own expiry, and then the batch reports no error.
//
// Standalone: nats.go and a real nats-server; no harness code. go.mod pins v1.55.0 (the
// current release when found); v1.41.1 behaves the same (see README).
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"kiservers"
)

func main() {
	s := kiservers.Start()
	ctx := context.Background()
	how := os.Getenv("HOW") // "close" (nc.Close) or "drain" (nc.Drain, the default)
	if how == "" {
		how = "drain"
	}
	nc, err := nats.Connect(s.NatsURL)
	if err != nil {
		kiservers.Inconclusive(err)
	}
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "KI019", Subjects: []string{"ki019.>"}}); err != nil {
		kiservers.Inconclusive(err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, "KI019", jetstream.ConsumerConfig{Durable: "d", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		kiservers.Inconclusive(err)
	}
	// The stream is empty: the fetch waits (a long poll, as a worker waiting for work does).
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(6*time.Second))
	if err != nil {
		kiservers.Inconclusive(err)
	}
	done := make(chan error, 1)
	go func() {
		for range batch.Messages() {
		}
		done <- batch.Error()
	}()
	time.Sleep(300 * time.Millisecond)
	t0 := time.Now()
	if how == "close" {
		nc.Close()
	} else if err := nc.Drain(); err != nil {
		kiservers.Inconclusive(err)
	}
	version := kiservers.NatsGoVersion()
	select {
	case err := <-done:
		kiservers.Finish(false, fmt.Sprintf("nats.go %s: Fetch ended %.2fs after nc.%s(): err=%v", version, time.Since(t0).Seconds(), how, err))
	case <-time.After(3 * time.Second):
	}
	closed := nc.IsClosed()
	select {
	case err := <-done:
		kiservers.Finish(true, fmt.Sprintf("nats.go %s: Fetch (FetchMaxWait 6s) still pending 3s after nc.%s() (connection closed: %v); "+
			"it ended %.2fs after it, by its own expiry, with err=%v", version, how, closed, time.Since(t0).Seconds(), err))
	case <-time.After(10 * time.Second):
		kiservers.Finish(true, fmt.Sprintf("nats.go %s: Fetch (FetchMaxWait 6s) still pending 13s after nc.%s() (connection closed: %v)", version, how, closed))
	}
}
