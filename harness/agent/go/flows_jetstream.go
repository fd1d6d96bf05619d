//go:build !nojetstream

package main

// Flows on the `jetstream` package (nats.go's current JetStream API), written the way a
// careful Go user writes them: contexts, errors checked, cleanup deferred. Same names and
// params as harness/flows/*.py; the observer prepares what they need.
//
// Built unless the `nojetstream` tag is set (nats.go releases before the package had
// what these flows use: see harness/targets/nats_go.py); then flows_nojetstream.go
// reports them not applicable.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func init() {
	// Both APIs have these calls: the jetstream package is the default.
	register("objectstore.get", byAPI(apiJetStream, map[string]flowFunc{apiJetStream: objectstoreGet, apiLegacy: legacyObjectstoreGet}))
	register("kv.get", byAPI(apiJetStream, map[string]flowFunc{apiJetStream: kvGet, apiLegacy: legacyKVGet}))
	register("kv.keys", byAPI(apiJetStream, map[string]flowFunc{apiJetStream: kvKeys, apiLegacy: legacyKVKeys}))
	register("kv.watch", byAPI(apiJetStream, map[string]flowFunc{apiJetStream: kvWatch, apiLegacy: legacyKVWatch}))
	// Consumer.Messages() has no legacy counterpart.
	register("next.iterate", byAPI(apiJetStream, map[string]flowFunc{apiJetStream: nextIterate}))
	// The same on an ordered consumer (Python: `ordered_consumer=True`).
	register("next.ordered", func(f *Flow) (map[string]any, error) {
		f.Params["ordered"] = true
		return nextIterate(f)
	})
	// The legacy API is these flows' default (a bound pull subscription drain faults act on).
	jetstreamImpls["stream.get_msg"] = jsStreamGetMsg
	jetstreamImpls["next.fetch"] = jsNextFetch
	for _, kind := range []string{"ack", "ack_sync", "nak", "nak_delay", "in_progress", "term"} {
		jetstreamImpls["ack."+kind] = jsAckFlow(kind)
	}
}

// The openings the jetstream flows share: the flow's bucket as a KeyValue or an ObjectStore,
// the observer's durable as a Consumer (each through a fresh jetstream.New, as the flows did).

func kvBucket(f *Flow) (jetstream.KeyValue, error) {
	js, err := jetstream.New(f.NC)
	if err != nil {
		return nil, err
	}
	return js.KeyValue(f.Ctx, f.Bucket())
}

func objectStore(f *Flow) (jetstream.ObjectStore, error) {
	js, err := jetstream.New(f.NC)
	if err != nil {
		return nil, err
	}
	return js.ObjectStore(f.Ctx, f.Bucket())
}

func durable(f *Flow) (jetstream.Consumer, error) {
	js, err := jetstream.New(f.NC)
	if err != nil {
		return nil, err
	}
	return js.Consumer(f.Ctx, f.Stream(), f.Consumer())
}

// jsAckFlow: Consumer.Fetch a batch from the durable, hold at before_ack, then acknowledge
// each message the given way (ack_sync: DoubleAck), and flush.
func jsAckFlow(kind string) flowFunc {
	return func(f *Flow) (map[string]any, error) {
		cons, err := durable(f)
		if err != nil {
			return nil, err
		}
		var msgs []jetstream.Msg
		for len(msgs) == 0 {
			if err := f.CheckDeadline(fmt.Sprintf("0 of %d messages", f.Int("count"))); err != nil {
				return nil, err
			}
			err := f.Call("fetch", func() error {
				batch, err := cons.Fetch(f.Int("count"), jetstream.FetchMaxWait(f.Dur("fetch_timeout")))
				if err != nil {
					return err
				}
				for m := range batch.Messages() {
					msgs = append(msgs, m)
				}
				return batch.Error()
			})
			if err != nil && !isTimeout(err) {
				return nil, err
			}
		}
		ids := make([]string, len(msgs))
		for i, m := range msgs {
			jsDelivered(f, m)
			ids[i] = string(m.Data())
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
				return m.Ack
			case "ack_sync":
				return func() error {
					ctx, cancel := context.WithTimeout(f.Ctx, t)
					defer cancel()
					return m.DoubleAck(ctx)
				}
			case "nak":
				return m.Nak
			case "nak_delay":
				return func() error { return m.NakWithDelay(f.Dur("nak_delay")) }
			case "in_progress":
				return m.InProgress
			case "term":
				return m.Term
			}
			return nil
		})
	}
}

// jsDelivered accounts a jetstream.Msg in the flow's delivery ledger.
func jsDelivered(f *Flow, m jetstream.Msg) {
	if md, err := m.Metadata(); err == nil {
		f.Delivered(md.Consumer, md.Sequence.Stream, md.NumDelivered)
	}
}

// jsStreamGetMsg: Stream.GetMsg. The jetstream package uses direct get whenever the stream
// allows it (the observer's stream does): the `direct` param has no say here.
func jsStreamGetMsg(f *Flow) (map[string]any, error) {
	js, err := jetstream.New(f.NC)
	if err != nil {
		return nil, err
	}
	stream, err := js.Stream(f.Ctx, f.Stream())
	if err != nil {
		return nil, err
	}
	if err := f.Checkpoint("in_call"); err != nil {
		return nil, err
	}
	ctx, cancel := callCtx(f, "call_timeout")
	defer cancel()
	var m *jetstream.RawStreamMsg
	err = f.Call("stream.get_msg", func() error {
		var err error
		m, err = stream.GetMsg(ctx, 1)
		return err
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"bytes": len(m.Data)}, nil
}

// jsNextFetch: Consumer.Fetch on the durable, acking each message, then a long poll. It has
// no subscription of its own for sub drain faults to act on.
func jsNextFetch(f *Flow) (map[string]any, error) {
	cons, err := durable(f)
	if err != nil {
		return nil, err
	}
	got := []string{}
	fetch := func(n int, wait time.Duration) ([]jetstream.Msg, error) {
		var msgs []jetstream.Msg
		err := f.Call("fetch", func() error {
			batch, err := cons.Fetch(n, jetstream.FetchMaxWait(wait))
			if err != nil {
				return err
			}
			for m := range batch.Messages() {
				msgs = append(msgs, m)
			}
			return batch.Error()
		})
		return msgs, err
	}
	count := f.Int("count")
	for distinct(got) < count {
		if err := f.CheckDeadline(fmt.Sprintf("%d of %d messages", distinct(got), count)); err != nil {
			return tally(got), err
		}
		msgs, err := fetch(f.Int("batch"), f.Dur("fetch_timeout"))
		if err != nil && !isTimeout(err) {
			return tally(got), err
		}
		for _, m := range msgs {
			jsDelivered(f, m)
			if err := m.Ack(); err != nil {
				return tally(got), err
			}
			got = append(got, string(m.Data()))
		}
	}
	f.Received(got)
	if _, err := fetch(1, f.Dur("wait_timeout")); err != nil && !isTimeout(err) && !errors.Is(err, nats.ErrConnectionClosed) {
		return tally(got), err
	}
	return tally(got), nil
}

// objectstoreGet: ObjectStore.Get and read the object whole (call_timeout 0: a context
// without deadline, the case nats-io/nats.go#1848 is about).
func objectstoreGet(f *Flow) (map[string]any, error) {
	obs, err := objectStore(f)
	if err != nil {
		return nil, err
	}
	if err := f.Checkpoint("in_call"); err != nil {
		return nil, err
	}
	ctx, cancel := callCtx(f, "call_timeout")
	defer cancel()
	return readObject(f, func() (io.ReadCloser, error) { return obs.Get(ctx, "obj") })
}

func kvGet(f *Flow) (map[string]any, error) {
	kv, err := kvBucket(f)
	if err != nil {
		return nil, err
	}
	if err := f.Checkpoint("in_call"); err != nil {
		return nil, err
	}
	ctx, cancel := callCtx(f, "call_timeout")
	defer cancel()
	var e jetstream.KeyValueEntry
	err = f.Call("kv.get", func() error {
		var err error
		e, err = kv.Get(ctx, "k")
		return err
	})
	if err != nil {
		return nil, err
	}
	return map[string]any{"bytes": len(e.Value())}, nil
}

// kvKeys lists a bucket's keys (a temporary watcher inside) with no caller deadline.
func kvKeys(f *Flow) (map[string]any, error) {
	kv, err := kvBucket(f)
	if err != nil {
		return nil, err
	}
	if err := f.Checkpoint("in_call"); err != nil {
		return nil, err
	}
	var keys []string
	err = f.Call("kv.keys", func() error {
		var err error
		keys, err = kv.Keys(f.Ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(keys) != f.Int("keys") {
		return nil, &IntegrityError{fmt.Sprintf("kv.Keys returned %d of %d keys", len(keys), f.Int("keys"))}
	}
	return map[string]any{"keys": len(keys)}, nil
}

// kvWatch: the initial values, then wait for updates until stopped (the flow's terminal action).
func kvWatch(f *Flow) (map[string]any, error) {
	kv, err := kvBucket(f)
	if err != nil {
		return nil, err
	}
	// The watch lives as long as its context (nats.go unsubscribes on ctx.Done()): the
	// flow's own, cancelled when the flow returns.
	wctx, cancel := context.WithCancel(f.Ctx)
	defer cancel()
	w, err := kv.WatchAll(wctx)
	if err != nil {
		return nil, err
	}
	f.OnFinish(w.Stop)
	defer func() {
		if !f.FinishRequested() {
			w.Stop() // an error on a closed connection is the expected answer
		}
	}()
	seen := []string{}
	for {
		var e jetstream.KeyValueEntry
		open := true
		err := f.Call("kv.watch.Updates", func() error {
			select {
			case e, open = <-w.Updates():
				return nil
			case <-f.Ctx.Done():
				return f.Ctx.Err()
			}
		})
		if err != nil {
			return nil, err
		}
		if !open {
			break
		}
		if e == nil { // end of the initial values
			f.Received(seen)
			continue
		}
		seen = append(seen, e.Key())
	}
	return map[string]any{"seen": len(seen)}, nil
}

// iterTrack maps drain faults onto a pull iterator: sub_drain -> Drain, unsubscribe -> Stop.
type iterTrack struct{ it jetstream.MessagesContext }

func (t iterTrack) Drain() error       { t.it.Drain(); return nil }
func (t iterTrack) Unsubscribe() error { t.it.Stop(); return nil }

// nextIterate: Consumer.Messages() and Next() in a loop, ended by the flow's own Stop (or
// a drain fault) — the iterator of nats-io/nats.go#1524.
func nextIterate(f *Flow) (map[string]any, error) {
	js, err := jetstream.New(f.NC)
	if err != nil {
		return nil, err
	}
	ordered := f.Bool("ordered")
	var cons jetstream.Consumer
	if ordered {
		cons, err = js.OrderedConsumer(f.Ctx, f.Stream(), jetstream.OrderedConsumerConfig{FilterSubjects: []string{f.Subject() + ".>"}})
	} else {
		cons, err = js.CreateConsumer(f.Ctx, f.Stream(), jetstream.ConsumerConfig{
			AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: f.Subject() + ".>", InactiveThreshold: 5 * time.Second,
		})
	}
	if err != nil {
		return nil, err
	}
	if !ordered {
		// A careful user deletes the ephemeral consumer it made (bounded: the link may be gone).
		name := cons.CachedInfo().Name
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			js.DeleteConsumer(ctx, f.Stream(), name)
		}()
	}
	var opts []jetstream.PullMessagesOpt
	if hb := f.Dur("idle_heartbeat"); hb > 0 {
		opts = append(opts, jetstream.PullHeartbeat(hb))
	}
	it, err := cons.Messages(opts...)
	if err != nil {
		return nil, err
	}
	f.Track(iterTrack{it})
	f.OnFinish(func() error { it.Stop(); return nil })
	defer it.Stop()
	got := []string{}
	for {
		var msg jetstream.Msg
		err := f.Call("messages.Next", func() error {
			var err error
			msg, err = it.Next()
			return err
		})
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			break
		}
		if err != nil {
			return tally(got), err
		}
		jsDelivered(f, msg)
		if !ordered {
			if err := msg.Ack(); err != nil {
				return tally(got), err
			}
		}
		id := string(msg.Data())
		fresh := !contains(got, id)
		got = append(got, id)
		if fresh && distinct(got) == f.Int("count") {
			f.Received(got)
		}
	}
	return tally(got), nil
}
