package main

// Flows on the legacy JetStream API (nats.JetStreamContext), present in every nats.go
// release the agent builds for. Pull fetch and ack flows use a bound pull subscription,
// as nats-py's `pull_subscribe_bind` does, so the drain faults act on a real
// subscription (sub.Drain, sub.Unsubscribe).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
)

// jetstreamImpls: the jetstream package's versions of the flows below (set by
// flows_jetstream.go; absent from builds of releases before it).
var jetstreamImpls = map[string]flowFunc{}

func init() {
	register("stream.get_msg", func(f *Flow) (map[string]any, error) {
		return byAPI(apiLegacy, map[string]flowFunc{apiLegacy: streamGetMsg, apiJetStream: jetstreamImpls["stream.get_msg"]})(f)
	})
	register("next.fetch", func(f *Flow) (map[string]any, error) {
		return byAPI(apiLegacy, map[string]flowFunc{apiLegacy: nextFetch, apiJetStream: jetstreamImpls["next.fetch"]})(f)
	})
	register("next.next_msg", nextNextMsg)
	for _, kind := range []string{"ack", "ack_sync", "nak", "nak_delay", "in_progress", "term"} {
		kind := kind
		register("ack."+kind, func(f *Flow) (map[string]any, error) {
			return byAPI(apiLegacy, map[string]flowFunc{apiLegacy: ackFlow(kind), apiJetStream: jetstreamImpls["ack."+kind]})(f)
		})
	}
}

// isTimeout: a bounded call that ended by its own timeout (nothing arrived in time).
func isTimeout(err error) bool {
	return errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded)
}

func streamGetMsg(f *Flow) (map[string]any, error) {
	js, err := f.NC.JetStream()
	if err != nil {
		return nil, err
	}
	if err := f.Checkpoint("in_call"); err != nil {
		return nil, err
	}
	ctx, cancel := callCtx(f, "call_timeout")
	defer cancel()
	opts := []nats.JSOpt{nats.Context(ctx)}
	if f.Bool("direct") {
		opts = append(opts, nats.DirectGet())
	}
	var m *nats.RawStreamMsg
	err = f.Call("stream.get_msg", func() error {
		var err error
		m, err = js.GetMsg(f.Stream(), 1, opts...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"bytes": len(m.Data)}, nil
}

// pullBound: the JetStream context and a pull subscription bound to the observer's durable
// (as nats-py's pull_subscribe_bind); bindPull when the flow needs only the subscription.
func pullBound(f *Flow) (nats.JetStreamContext, *nats.Subscription, error) {
	js, err := f.NC.JetStream()
	if err != nil {
		return nil, nil, err
	}
	sub, err := js.PullSubscribe("", f.Consumer(), nats.Bind(f.Stream(), f.Consumer()))
	return js, sub, err
}

func bindPull(f *Flow) (*nats.Subscription, error) {
	_, sub, err := pullBound(f)
	return sub, err
}

// nextFetch: fetch every message, acking each, then a long-poll fetch that waits for more.
func nextFetch(f *Flow) (map[string]any, error) {
	sub, err := bindPull(f)
	if err != nil {
		return nil, err
	}
	f.Track(sub)
	defer sub.Unsubscribe()
	got, err := collectAcked(f, func() ([]*nats.Msg, error) {
		var msgs []*nats.Msg
		err := f.Call("fetch", func() error {
			var err error
			msgs, err = sub.Fetch(f.Int("batch"), nats.MaxWait(f.Dur("fetch_timeout")))
			return err
		})
		return msgs, err
	})
	if err != nil {
		return tally(got), err
	}
	// The stream is empty now: this long poll parks a pull request on the server (the
	// `waiting` trigger). It ends by its own timeout, or sooner when the subscription ends.
	err = f.Call("fetch", func() error {
		_, err := sub.Fetch(1, nats.MaxWait(f.Dur("wait_timeout")))
		return err
	})
	if err != nil && !waitEnded(err) {
		return tally(got), err
	}
	return tally(got), nil
}

// collectAcked: pull until `count` distinct messages are in (distinct ids: a redelivery
// fills no gap), acking each, bounded by the flow's deadline; a pull that ended by its own
// timeout is tried again. What nextFetch and nextNextMsg do with their own pull call.
func collectAcked(f *Flow, pull func() ([]*nats.Msg, error)) ([]string, error) {
	got := []string{}
	count := f.Int("count")
	for distinct(got) < count {
		if err := f.CheckDeadline(fmt.Sprintf("%d of %d messages", distinct(got), count)); err != nil {
			return got, err
		}
		msgs, err := pull()
		if isTimeout(err) {
			continue
		}
		if err != nil {
			return got, err
		}
		for _, m := range msgs {
			f.DeliveredMsg(m)
			if err := m.Ack(); err != nil {
				return got, err
			}
			got = append(got, string(m.Data))
		}
	}
	f.Received(got)
	return got, nil
}

// waitEnded: the error of a flow's last call, the one that waits for more, is one it expects:
// the call's own timeout, or its subscription or connection ended (a drain or close fault).
func waitEnded(err error) bool {
	return isTimeout(err) || errors.Is(err, nats.ErrBadSubscription) || errors.Is(err, nats.ErrConnectionClosed)
}

// nextNextMsg: sub.NextMsg(timeout) on a push subscription until every message is in,
// then one that waits.
func nextNextMsg(f *Flow) (map[string]any, error) {
	js, err := f.NC.JetStream()
	if err != nil {
		return nil, err
	}
	sub, err := js.SubscribeSync(f.Subject()+".>", nats.ManualAck())
	if err != nil {
		return nil, err
	}
	f.Track(sub)
	defer func() {
		if sub.IsValid() {
			sub.Unsubscribe()
		}
	}()
	got, err := collectAcked(f, func() ([]*nats.Msg, error) {
		var m *nats.Msg
		err := f.Call("next_msg", func() error {
			var err error
			m, err = sub.NextMsg(f.Dur("next_timeout"))
			return err
		})
		if err != nil {
			return nil, err
		}
		return []*nats.Msg{m}, nil
	})
	if err != nil {
		return tally(got), err
	}
	err = f.Call("next_msg", func() error {
		_, err := sub.NextMsg(f.Dur("wait_timeout"))
		return err
	})
	if err != nil && !waitEnded(err) {
		return tally(got), err
	}
	return tally(got), nil
}

// ackFlow: fetch a batch from the durable, hold at before_ack (where the fault goes in),
// then acknowledge every message the given way, and flush.
func ackFlow(kind string) flowFunc {
	return func(f *Flow) (map[string]any, error) {
		sub, err := bindPull(f)
		if err != nil {
			return nil, err
		}
		f.Track(sub)
		defer sub.Unsubscribe()
		var msgs []*nats.Msg
		for len(msgs) == 0 {
			if err := f.CheckDeadline(fmt.Sprintf("0 of %d messages", f.Int("count"))); err != nil {
				return nil, err
			}
			err := f.Call("fetch", func() error {
				var err error
				msgs, err = sub.Fetch(f.Int("count"), nats.MaxWait(f.Dur("fetch_timeout")))
				return err
			})
			if isTimeout(err) {
				continue
			}
			if err != nil {
				return nil, err
			}
		}
		ids := make([]string, len(msgs))
		for i, m := range msgs {
			f.DeliveredMsg(m)
			ids[i] = string(m.Data)
		}
		f.Received(ids)
		if err := f.Checkpoint("before_ack"); err != nil {
			return nil, err
		}
		t := f.Dur("ack_timeout")
		return ackAll(f, kind, len(msgs), func(i int) func() error {
			m := msgs[i]
			switch kind {
			case "ack":
				return func() error { return m.Ack() }
			case "ack_sync":
				return func() error { return m.AckSync(nats.AckWait(t)) }
			case "nak":
				return func() error { return m.Nak() }
			case "nak_delay":
				return func() error { return m.NakWithDelay(f.Dur("nak_delay")) }
			case "in_progress":
				return func() error { return m.InProgress() }
			case "term":
				return func() error { return m.Term() }
			}
			return nil
		})
	}
}

// ackLabel: the call label of each ack kind (nak_delay is a nak with a delay).
var ackLabel = map[string]string{"ack": "ack", "ack_sync": "ack_sync", "nak": "nak", "nak_delay": "nak",
	"in_progress": "in_progress", "term": "term"}

// ackAll: the acknowledging half of the ack flows of both APIs (which differ only in how a
// message is acknowledged, call(i)): every message the flow's way, each a labelled call, then
// a flush, since a careful user makes sure fire-and-forget acks reach the server.
func ackAll(f *Flow, kind string, n int, call func(i int) func() error) (map[string]any, error) {
	for i := 0; i < n; i++ {
		if err := f.Call(ackLabel[kind], call(i)); err != nil {
			return nil, err
		}
	}
	if err := f.Call("flush", func() error { return f.NC.FlushTimeout(f.Dur("ack_timeout")) }); err != nil {
		return nil, err
	}
	confirmed := 0
	if kind == "ack_sync" {
		confirmed = n
	}
	return map[string]any{"acked": n, "kind": kind, "confirmed": confirmed}, nil
}

// -- the legacy API's versions of flows whose default is the jetstream package ----------------

// legacyObjectstoreGet: JetStreamContext.ObjectStore(bucket).Get with nats.Context.
func legacyObjectstoreGet(f *Flow) (map[string]any, error) {
	js, err := f.NC.JetStream()
	if err != nil {
		return nil, err
	}
	obs, err := js.ObjectStore(f.Bucket())
	if err != nil {
		return nil, err
	}
	if err := f.Checkpoint("in_call"); err != nil {
		return nil, err
	}
	ctx, cancel := callCtx(f, "call_timeout")
	defer cancel()
	return readObject(f, func() (io.ReadCloser, error) { return obs.Get("obj", nats.Context(ctx)) })
}

// legacyKV: the bucket through a JetStreamContext whose requests wait `wait` (0: its default).
func legacyKV(f *Flow, wait time.Duration) (nats.KeyValue, error) {
	var opts []nats.JSOpt
	if wait > 0 {
		opts = append(opts, nats.MaxWait(wait))
	}
	js, err := f.NC.JetStream(opts...)
	if err != nil {
		return nil, err
	}
	return js.KeyValue(f.Bucket())
}

// legacyKVGet: KeyValue.Get takes no context; the call's bound is the context's MaxWait.
func legacyKVGet(f *Flow) (map[string]any, error) {
	kv, err := legacyKV(f, f.Dur("call_timeout"))
	if err != nil {
		return nil, err
	}
	if err := f.Checkpoint("in_call"); err != nil {
		return nil, err
	}
	var e nats.KeyValueEntry
	if err := f.Call("kv.get", func() error {
		var err error
		e, err = kv.Get("k")
		return err
	}); err != nil {
		return nil, err
	}
	return map[string]any{"bytes": len(e.Value())}, nil
}

func legacyKVKeys(f *Flow) (map[string]any, error) {
	kv, err := legacyKV(f, f.Dur("js_timeout"))
	if err != nil {
		return nil, err
	}
	if err := f.Checkpoint("in_call"); err != nil {
		return nil, err
	}
	var keys []string
	if err := f.Call("kv.keys", func() error {
		var err error
		keys, err = kv.Keys()
		return err
	}); err != nil {
		return nil, err
	}
	if len(keys) != f.Int("keys") {
		return nil, &IntegrityError{fmt.Sprintf("kv.Keys returned %d of %d keys", len(keys), f.Int("keys"))}
	}
	return map[string]any{"keys": len(keys)}, nil
}

func legacyKVWatch(f *Flow) (map[string]any, error) {
	kv, err := legacyKV(f, f.Dur("js_timeout"))
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(f.Ctx) // the watch lives as long as its context
	defer cancel()
	w, err := kv.WatchAll(nats.Context(wctx))
	if err != nil {
		return nil, err
	}
	f.OnFinish(w.Stop)
	defer func() {
		if !f.FinishRequested() {
			w.Stop()
		}
	}()
	seen := []string{}
	for {
		var e nats.KeyValueEntry
		open := true
		if err := f.Call("kv.watch.Updates", func() error {
			select {
			case e, open = <-w.Updates():
				return nil
			case <-f.Ctx.Done():
				return f.Ctx.Err()
			}
		}); err != nil {
			return nil, err
		}
		if !open {
			break
		}
		if e == nil {
			f.Received(seen)
			continue
		}
		seen = append(seen, e.Key())
	}
	return map[string]any{"seen": len(seen)}, nil
}
