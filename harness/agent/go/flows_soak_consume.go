//go:build !nojetstream && !noconsumeclosed

package main

// soak.consume_drain: Consumer.Consume() with a callback until every message is in, then
// ConsumeContext.Drain() and wait for Closed() (from v1.37.0; flows_soak_noconsume.go
// reports it not applicable before).

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func init() {
	register("soak.consume_drain", byAPI(apiJetStream, map[string]flowFunc{apiJetStream: jsSoakConsumeDrain}))
}

func jsSoakConsumeDrain(f *Flow) (map[string]any, error) {
	js, err := jetstream.New(f.NC)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(f.Ctx, f.Dur("call_timeout"))
	defer cancel()
	cons, err := js.CreateConsumer(ctx, f.Stream(), jetstream.ConsumerConfig{
		AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: f.Subject() + ".>", InactiveThreshold: 5 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	defer js.DeleteConsumer(ctx, f.Stream(), cons.CachedInfo().Name)
	count := f.Int("count")
	var mu sync.Mutex
	got := 0
	all := make(chan struct{})
	cc, err := cons.Consume(func(m jetstream.Msg) {
		jsDelivered(f, m)
		m.Ack()
		mu.Lock()
		defer mu.Unlock()
		if got++; got == count {
			close(all)
		}
	})
	if err != nil {
		return nil, err
	}
	defer cc.Stop()
	if err := f.Call("consume", func() error {
		select {
		case <-all:
			return nil
		case <-ctx.Done():
			mu.Lock()
			defer mu.Unlock()
			return &FlowGaveUp{fmt.Sprintf("gave up with %d of %d messages", got, count)}
		}
	}); err != nil {
		return nil, err
	}
	cc.Drain()
	if err := f.Call("consume.Drain", func() error {
		select {
		case <-cc.Closed():
			return nil
		case <-ctx.Done():
			return fmt.Errorf("the consume context did not close within call_timeout of Drain(): %w", ctx.Err())
		}
	}); err != nil {
		return nil, err
	}
	return map[string]any{"received": count}, nil
}
