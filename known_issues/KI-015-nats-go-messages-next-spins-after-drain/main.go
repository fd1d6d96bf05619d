// KI-015: nats.go's pull iterator (jetstream Consumer.Messages()): a goroutine blocked in
// Next() when another calls Drain() never gets ErrMsgIteratorClosed and spins
// (nats-io/nats.go#1524; affected v1.32.0, fixed in v1.33.0 by #1525).
//
// Standalone: nats.go and a real nats-server; no harness code. go.mod pins the affected
// release; `go run -modfile=fixed.mod .` runs the fixed one.
package main

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"kiservers"
)

func cpu() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

func main() {
	s := kiservers.Start()
	ctx := context.Background()
	nc, err := nats.Connect(s.NatsURL)
	if err != nil {
		kiservers.Inconclusive(err)
	}
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "KI015", Subjects: []string{"ki015.>"}}); err != nil {
		kiservers.Inconclusive(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := js.Publish(ctx, "ki015.m", []byte(fmt.Sprint(i))); err != nil {
			kiservers.Inconclusive(err)
		}
	}
	cons, err := js.CreateConsumer(ctx, "KI015", jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		kiservers.Inconclusive(err)
	}
	it, err := cons.Messages()
	if err != nil {
		kiservers.Inconclusive(err)
	}
	for i := 0; i < 3; i++ {
		m, err := it.Next()
		if err != nil {
			kiservers.Inconclusive(err)
		}
		m.Ack()
	}
	// Every message is in: the next Next() waits for more. Another goroutine drains the iterator.
	done := make(chan error, 1)
	go func() {
		_, err := it.Next()
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	c0, t0 := cpu(), time.Now()
	it.Drain()
	version := kiservers.NatsGoVersion()
	select {
	case err := <-done:
		kiservers.Finish(false, fmt.Sprintf("nats.go %s: Next returned %.3fs after Drain(): %v (ErrMsgIteratorClosed: %v)",
			version, time.Since(t0).Seconds(), err, errors.Is(err, jetstream.ErrMsgIteratorClosed)))
	case <-time.After(3 * time.Second):
	}
	busy := cpu() - c0
	kiservers.Finish(busy > 1.0, fmt.Sprintf("nats.go %s: Next had not returned 3s after Drain(); the process burnt %.2fs of CPU in those %.2fs (%s)",
		version, busy, time.Since(t0).Seconds(), map[bool]string{true: "a spin", false: "idle: a lost wake-up, not this issue"}[busy > 1.0]))
}
