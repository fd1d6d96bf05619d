package main

// The continue.* flows on the legacy JetStream API (every release the agent builds for): a
// waiting call the cancel family gives up on (f.WaitAgain: its context is cancelled, or given
// a deadline), then the SAME subscription / connection again: publish `after` new messages
// and take them, each next call bounded by its own timeout. Same names, params and
// continuation record as harness/flows/continuation.py; the observer prepares what they need.

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

const jsTimeout = 5 * time.Second // nats.go's JetStream context's default wait (js.Publish, kv.Get, ...)

func init() {
	register("continue.next_msg", continueNextMsg)
	register("continue.fetch", continueFetch)
	register("continue.publish", continuePublish)
	register("continue.ack_sync", continueAckSync)
}

// publishAfter publishes `after` new messages on the flow's subject (same connection), each awaiting its ack.
func publishAfter(f *Flow, js nats.JetStreamContext) error {
	for _, id := range afterIDs(f) {
		err := f.Timed("js.publish", jsTimeout, func() error {
			_, err := js.Publish(f.Subject()+".m", []byte(id))
			return err
		})
		if err != nil {
			return err
		}
		f.Cont().Publish(id)
	}
	return nil
}

// takeAfter takes messages with the same subscription until every one published after the
// waiting call is in, or `after_wait` passes (what is missing then is the delivery check's finding);
// idle, if given, runs after a take that got nothing (outside the take's own time).
func takeAfter(f *Flow, label string, take func() ([]*nats.Msg, error), idle ...func() error) error {
	nt := f.Dur("next_timeout")
	for end := time.Now().Add(f.Dur("after_wait")); len(f.Cont().Missing()) > 0 && time.Now().Before(end); {
		var msgs []*nats.Msg
		err := f.Timed(label, nt, func() error {
			var err error
			msgs, err = take()
			return err
		})
		if isTimeout(err) {
			for _, fn := range idle {
				if err := fn(); err != nil {
					return err
				}
			}
			continue
		}
		if err != nil {
			return err
		}
		for _, m := range msgs {
			f.DeliveredMsg(m)
			if err := m.Ack(); err != nil {
				return err
			}
			f.Cont().Received(string(m.Data))
		}
	}
	return nil
}

// tookAfter accounts a message the waiting call returned (one on its way as the caller gave up).
func tookAfter(f *Flow, m *nats.Msg) error {
	f.DeliveredMsg(m)
	f.Cont().Received(string(m.Data))
	return m.Ack()
}

func continueResult(f *Flow, got []string) map[string]any {
	s := f.Cont().summary()
	out := map[string]any{"received": distinct(got)}
	if s != nil {
		out["after"], out["after_delivered"] = s["published"], s["delivered"]
	}
	return out
}

// continueNextMsg: NextMsg on the observer's push durable until every message is in, one that
// waits (NextMsgWithContext), then the same subscription again.
func continueNextMsg(f *Flow) (map[string]any, error) {
	js, err := f.NC.JetStream()
	if err != nil {
		return nil, err
	}
	sub, err := js.SubscribeSync("", nats.Bind(f.Stream(), f.Consumer()), nats.ManualAck())
	if err != nil {
		return nil, err
	}
	f.Track(sub)
	defer sub.Unsubscribe()
	one := func() ([]*nats.Msg, error) {
		m, err := sub.NextMsg(f.Dur("next_timeout"))
		if err != nil {
			return nil, err
		}
		return []*nats.Msg{m}, nil
	}
	got, err := collectAcked(f, func() ([]*nats.Msg, error) {
		var msgs []*nats.Msg
		err := f.Call("next_msg", func() error { var err error; msgs, err = one(); return err })
		return msgs, err
	})
	if err != nil {
		return continueResult(f, got), err
	}
	err = f.WaitAgain("next_msg", f.Dur("wait_timeout"), func(ctx context.Context) error {
		m, err := sub.NextMsgWithContext(ctx)
		if err == nil {
			return tookAfter(f, m)
		}
		return err
	})
	if err != nil {
		return continueResult(f, got), err
	}
	if err := publishAfter(f, js); err != nil {
		return continueResult(f, got), err
	}
	return continueResult(f, got), takeAfter(f, "next_msg", one)
}

// continueFetch: pull-fetch every message, a long-poll fetch that waits (nats.Context), then
// the same pull subscription again.
func continueFetch(f *Flow) (map[string]any, error) {
	js, sub, err := pullBound(f)
	if err != nil {
		return nil, err
	}
	f.Track(sub)
	defer sub.Unsubscribe()
	take := func() ([]*nats.Msg, error) { return sub.Fetch(f.Int("batch"), nats.MaxWait(f.Dur("next_timeout"))) }
	got, err := collectAcked(f, func() ([]*nats.Msg, error) {
		var msgs []*nats.Msg
		err := f.Call("fetch", func() error { var err error; msgs, err = take(); return err })
		return msgs, err
	})
	if err != nil {
		return continueResult(f, got), err
	}
	err = f.WaitAgain("fetch", f.Dur("wait_timeout"), func(ctx context.Context) error {
		msgs, err := sub.Fetch(1, nats.Context(ctx))
		for _, m := range msgs {
			if err := tookAfter(f, m); err != nil {
				return err
			}
		}
		return err
	})
	if err != nil {
		return continueResult(f, got), err
	}
	if err := publishAfter(f, js); err != nil {
		return continueResult(f, got), err
	}
	return continueResult(f, got), takeAfter(f, "fetch", take)
}

// continuePublish: a js.Publish awaiting its ack (under a stall), given up; then the same
// connection publishes again and a pull subscription receives every message published after it.
func continuePublish(f *Flow) (map[string]any, error) {
	js, sub, err := pullBound(f)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	err = f.WaitInCall("js.publish", func(ctx context.Context) error {
		_, err := js.Publish(f.Subject()+".m", []byte("given-up"), nats.Context(ctx))
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := publishAfter(f, js); err != nil {
		return nil, err
	}
	return continueResult(f, nil), takeAfter(f, "fetch", func() ([]*nats.Msg, error) {
		return sub.Fetch(5, nats.MaxWait(f.Dur("next_timeout")))
	})
}

// continueAckSync: an AckSync awaiting the server's confirmation (under a stall), given up;
// then the same pull subscription takes and acks every message published after it.
func continueAckSync(f *Flow) (map[string]any, error) {
	js, sub, err := pullBound(f)
	if err != nil {
		return nil, err
	}
	f.Track(sub)
	defer sub.Unsubscribe()
	var msgs []*nats.Msg
	for len(msgs) == 0 {
		if err := f.CheckDeadline("no message to ack yet"); err != nil {
			return nil, err
		}
		err := f.Call("fetch", func() error {
			var err error
			msgs, err = sub.Fetch(1, nats.MaxWait(f.Dur("next_timeout")))
			return err
		})
		if err != nil && !isTimeout(err) {
			return nil, err
		}
	}
	m := msgs[0]
	f.DeliveredMsg(m)
	if err := f.Checkpoint("before_ack"); err != nil {
		return nil, err
	}
	err = f.WaitAgain("ack_sync", jsTimeout, func(ctx context.Context) error { return m.AckSync(nats.Context(ctx)) })
	if err != nil {
		return nil, fmt.Errorf("ack_sync: %w", err)
	}
	if err := publishAfter(f, js); err != nil {
		return nil, err
	}
	return continueResult(f, nil), takeAfter(f, "fetch", func() ([]*nats.Msg, error) {
		return sub.Fetch(5, nats.MaxWait(f.Dur("next_timeout")))
	})
}
