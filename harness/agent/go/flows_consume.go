//go:build !nojetstream && !noconsumeclosed

package main

// next.consume: Consumer.Consume with a callback, waited on through ConsumeContext.Closed()
// (from v1.37.0; older releases build with -tags noconsumeclosed and report the flow not
// applicable, flows_noconsume.go).

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func init() {
	register("next.consume", byAPI(apiJetStream, map[string]flowFunc{apiJetStream: nextConsume}))
}

// consumeTrack maps drain faults onto a consume context: sub_drain -> Drain, unsubscribe -> Stop.
type consumeTrack struct{ cc jetstream.ConsumeContext }

func (t consumeTrack) Drain() error       { t.cc.Drain(); return nil }
func (t consumeTrack) Unsubscribe() error { t.cc.Stop(); return nil }

// nextConsume: messages handed to a callback (acked there) until the consume context
// closes: by the flow's own Stop, or by a drain fault.
func nextConsume(f *Flow) (map[string]any, error) {
	js, err := jetstream.New(f.NC)
	if err != nil {
		return nil, err
	}
	cons, err := js.CreateConsumer(f.Ctx, f.Stream(), jetstream.ConsumerConfig{
		AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: f.Subject() + ".>", InactiveThreshold: 5 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	name := cons.CachedInfo().Name
	defer func() { // a careful user deletes the ephemeral consumer it made (bounded)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		js.DeleteConsumer(ctx, f.Stream(), name)
	}()
	var mu sync.Mutex
	got := []string{}
	count := f.Int("count")
	cc, err := cons.Consume(func(m jetstream.Msg) {
		jsDelivered(f, m)
		m.Ack()
		mu.Lock()
		defer mu.Unlock()
		id := string(m.Data())
		fresh := !contains(got, id)
		got = append(got, id)
		if fresh && distinct(got) == count {
			f.Received(append([]string(nil), got...))
		}
	})
	if err != nil {
		return nil, err
	}
	f.Track(consumeTrack{cc})
	f.OnFinish(func() error { cc.Stop(); return nil })
	defer cc.Stop()
	err = f.Call("consume", func() error {
		select {
		case <-cc.Closed():
			return nil
		case <-f.Ctx.Done():
			return f.Ctx.Err()
		}
	})
	mu.Lock()
	defer mu.Unlock()
	return tally(got), err
}
