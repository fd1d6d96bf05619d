//go:build !nojetstream

package main

// Soak flows on the jetstream package (the default where a release has it; see
// flows_soak.go): the seed's NakWithDelay loop through Consumer.Fetch, and loops of
// Consumer.Messages() taken and Stop()ped.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func init() {
	jetstreamImpls["soak.nak_delay"] = jsSoakNakDelay
	jetstreamImpls["soak.subscribe_cycle"] = jsSoakMessagesStop
	jetstreamImpls["objectstore.get"] = objectstoreGet
}

// jsSoakNakDelay: publish `count` messages, Consumer.Fetch them from the durable and
// NakWithDelay each with a long delay, then flush.
func jsSoakNakDelay(f *Flow) (map[string]any, error) {
	js, err := jetstream.New(f.NC)
	if err != nil {
		return nil, err
	}
	count := f.Int("count")
	ctx, cancel := context.WithTimeout(f.Ctx, 10*time.Second)
	defer cancel()
	for i := 0; i < count; i++ {
		if _, err := js.Publish(ctx, f.Subject()+".m", []byte(fmt.Sprintf("m%d", i))); err != nil {
			return nil, err
		}
	}
	cons, err := js.Consumer(ctx, f.Stream(), f.Consumer())
	if err != nil {
		return nil, err
	}
	got := 0
	for got < count {
		if err := f.CheckDeadline(fmt.Sprintf("%d of %d messages", got, count)); err != nil {
			return nil, err
		}
		var batch jetstream.MessageBatch
		if err := f.Call("fetch", func() error {
			var err error
			batch, err = cons.Fetch(count-got, jetstream.FetchMaxWait(f.Dur("fetch_timeout")))
			return err
		}); err != nil {
			return nil, err
		}
		for m := range batch.Messages() {
			jsDelivered(f, m)
			if err := f.Call("nak", func() error { return m.NakWithDelay(f.Dur("nak_delay")) }); err != nil {
				return nil, err
			}
			got++
		}
		if err := batch.Error(); err != nil && !isTimeout(err) {
			return nil, err
		}
	}
	if err := f.Call("flush", f.NC.Flush); err != nil {
		return nil, err
	}
	return map[string]any{"naked": got}, nil
}

// jsSoakMessagesStop: an ephemeral consumer, Consumer.Messages(), Next() until every message
// is in (acking each), Stop(), and the consumer deleted (as a careful user does).
func jsSoakMessagesStop(f *Flow) (map[string]any, error) {
	js, err := jetstream.New(f.NC)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(f.Ctx, 10*time.Second)
	defer cancel()
	cons, err := js.CreateConsumer(ctx, f.Stream(), jetstream.ConsumerConfig{
		AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: f.Subject() + ".>", InactiveThreshold: 5 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	defer js.DeleteConsumer(ctx, f.Stream(), cons.CachedInfo().Name)
	it, err := cons.Messages()
	if err != nil {
		return nil, err
	}
	defer it.Stop()
	got := 0
	for got < f.Int("count") {
		var m jetstream.Msg
		err := f.Call("messages.Next", func() error {
			var err error
			m, err = it.Next()
			return err
		})
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return nil, fmt.Errorf("the iterator closed with %d of %d messages", got, f.Int("count"))
		}
		if err != nil {
			return nil, err
		}
		jsDelivered(f, m)
		if err := m.Ack(); err != nil {
			return nil, err
		}
		got++
	}
	return map[string]any{"received": got}, nil
}
