//go:build !nojetstream && !nonextcontext

package main

// continue.iterate on nats.go: Consumer.Messages() and Next(NextContext(ctx)) — the waiting
// Next is the one the cancel family gives up on; then the same iterator again. NextContext
// arrived in v1.46.0; older releases build with -tags nonextcontext (flows_cancel_nonext.go).

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func init() {
	register("continue.iterate", continueIterate)
}

func continueIterate(f *Flow) (map[string]any, error) {
	js, err := jetstream.New(f.NC)
	if err != nil {
		return nil, err
	}
	// Messages() needs a pull consumer: the flow makes its own (the observer's durable is a
	// push consumer, for nats-py's iterator) and, as a careful user, deletes it at the end.
	cons, err := js.CreateConsumer(f.Ctx, f.Stream(), jetstream.ConsumerConfig{
		AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: f.Subject() + ".>", InactiveThreshold: 5 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	name := cons.CachedInfo().Name
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		js.DeleteConsumer(ctx, f.Stream(), name)
	}()
	it, err := cons.Messages()
	if err != nil {
		return nil, err
	}
	f.Track(iterTrack{it})
	defer it.Stop()
	nt := f.Dur("next_timeout")
	next := func(label string, timeout time.Duration) (jetstream.Msg, error) {
		var m jetstream.Msg
		err := f.Call(label, func() error { var err error; m, err = it.Next(jetstream.NextMaxWait(timeout)); return err })
		return m, err
	}
	got := []string{}
	for distinct(got) < f.Int("count") {
		if err := f.CheckDeadline("messages"); err != nil {
			return tally(got), err
		}
		m, err := next("messages.Next", nt)
		if isTimeout(err) {
			continue
		}
		if err != nil {
			return tally(got), err
		}
		jsDelivered(f, m)
		if err := m.Ack(); err != nil {
			return tally(got), err
		}
		got = append(got, string(m.Data()))
	}
	f.Received(got)
	err = f.WaitAgain("messages.Next", f.Dur("wait_timeout"), func(ctx context.Context) error {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err == nil { // one on its way as the caller gave up
			jsDelivered(f, m)
			f.Cont().Received(string(m.Data()))
			return m.Ack()
		}
		return err
	})
	if err != nil {
		return continueResult(f, got), err
	}
	legacy, err := f.NC.JetStream()
	if err != nil {
		return continueResult(f, got), err
	}
	if err := publishAfter(f, legacy); err != nil {
		return continueResult(f, got), err
	}
	for end := time.Now().Add(f.Dur("after_wait")); len(f.Cont().Missing()) > 0 && time.Now().Before(end); {
		var m jetstream.Msg
		err := f.Timed("messages.Next", nt, func() error { var err error; m, err = it.Next(jetstream.NextMaxWait(nt)); return err })
		if isTimeout(err) {
			continue
		}
		if err != nil {
			return continueResult(f, got), err
		}
		jsDelivered(f, m)
		if err := m.Ack(); err != nil {
			return continueResult(f, got), err
		}
		f.Cont().Received(string(m.Data()))
	}
	return continueResult(f, got), nil
}
