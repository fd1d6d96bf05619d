package main

// Soak flows: one round of a long-running use, repeated by the runner on one connection with
// memory sampled after each round (the counterparts of harness/flows/soak.py, same names and
// params). Each round leaves the stream as the next round needs it, so what grows from round
// to round is what the client keeps. The legacy JetStreamContext versions are here (every
// release has them); flows_soak_jetstream.go adds the jetstream package's, the default
// where a release has it. The seed of this project is soak.nak_delay: a service that
// NakWithDelay'd every message with a long delay grew until it ran out of memory.

import (
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
)

func init() {
	register("soak.nak_delay", bothAPIs("soak.nak_delay", soakNakDelay))
	register("soak.objectstore_get", bothAPIs("objectstore.get", legacyObjectstoreGet))
	register("soak.subscribe_cycle", bothAPIs("soak.subscribe_cycle", soakSubscribeCycle))
	register("soak.fetch_empty", soakFetchEmpty)
	register("selftest.soak_leak", func(f *Flow) (map[string]any, error) { return selftestSoakRound(f, true) })
	register("selftest.soak_clean", func(f *Flow) (map[string]any, error) { return selftestSoakRound(f, false) })
}

// bothAPIs: the jetstream package's implementation (jetstreamImpls[name]) is the default
// where this build has it, the legacy one otherwise; a scenario's `api` param picks.
func bothAPIs(name string, legacy flowFunc) flowFunc {
	return func(f *Flow) (map[string]any, error) {
		js := jetstreamImpls[name]
		def := apiLegacy
		if js != nil {
			def = apiJetStream
		}
		return byAPI(def, map[string]flowFunc{apiLegacy: legacy, apiJetStream: js})(f)
	}
}

// soakNakDelay: publish `count` messages, fetch them from the durable pull consumer and
// NakWithDelay each with a long delay (they stay pending on the server), then flush.
func soakNakDelay(f *Flow) (map[string]any, error) {
	js, err := f.NC.JetStream()
	if err != nil {
		return nil, err
	}
	count := f.Int("count")
	for i := 0; i < count; i++ {
		if _, err := js.Publish(f.Subject()+".m", []byte(fmt.Sprintf("m%d", i))); err != nil {
			return nil, err
		}
	}
	sub, err := bindPull(f)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	got := 0
	for got < count {
		if err := f.CheckDeadline(fmt.Sprintf("%d of %d messages", got, count)); err != nil {
			return nil, err
		}
		var msgs []*nats.Msg
		err := f.Call("fetch", func() error {
			var err error
			msgs, err = sub.Fetch(count-got, nats.MaxWait(f.Dur("fetch_timeout")))
			return err
		})
		if isTimeout(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			f.DeliveredMsg(m)
			if err := f.Call("nak", func() error { return m.NakWithDelay(f.Dur("nak_delay")) }); err != nil {
				return nil, err
			}
			got++
		}
	}
	if err := f.Call("flush", f.NC.Flush); err != nil { // the naks reach the server
		return nil, err
	}
	return map[string]any{"naked": got}, nil
}

// soakSubscribeCycle: subscribe (an ephemeral push consumer), take every message with
// NextMsg, ack, unsubscribe (which deletes the consumer the subscribe made).
func soakSubscribeCycle(f *Flow) (map[string]any, error) {
	js, err := f.NC.JetStream()
	if err != nil {
		return nil, err
	}
	sub, err := js.SubscribeSync(f.Subject()+".>", nats.ManualAck(), nats.AckExplicit())
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	got := 0
	for got < f.Int("count") {
		var m *nats.Msg
		if err := f.Call("sub.NextMsg", func() error {
			var err error
			m, err = sub.NextMsg(f.Dur("next_timeout"))
			return err
		}); err != nil {
			return nil, err
		}
		f.DeliveredMsg(m)
		if err := m.Ack(); err != nil {
			return nil, err
		}
		got++
	}
	return map[string]any{"received": got}, nil
}

// soakFetchEmpty: fetch with a short timeout from an empty stream, `fetches` times (each one
// times out).
func soakFetchEmpty(f *Flow) (map[string]any, error) {
	sub, err := bindPull(f)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	timeouts := 0
	for i := 0; i < f.Int("fetches"); i++ {
		var msgs []*nats.Msg
		err := f.Call("fetch", func() error {
			var err error
			msgs, err = sub.Fetch(1, nats.MaxWait(f.Dur("fetch_timeout")))
			return err
		})
		switch {
		case isTimeout(err):
			timeouts++
		case err != nil:
			return nil, err
		default:
			return nil, &IntegrityError{fmt.Sprintf("fetch from an empty stream returned %d message(s)", len(msgs))}
		}
	}
	return map[string]any{"timeouts": timeouts}, nil
}

// soakKept: what the leaky soak round keeps, as a client's cache that never evicts would.
var (
	soakMu   sync.Mutex
	soakKept [][]any
)

// selftestSoakRound: one round that allocates `bytes` bytes and `objects` small objects;
// the leaky one keeps them for good (a growing slice) and leaves a goroutine behind.
func selftestSoakRound(f *Flow, leak bool) (map[string]any, error) {
	if err := f.Call("flush", f.NC.Flush); err != nil {
		return nil, err
	}
	made := []any{make([]byte, f.Int("bytes"))}
	for i := 0; i < f.Int("objects"); i++ {
		v := i
		made = append(made, &v) // a heap object each
	}
	soakMu.Lock()
	defer soakMu.Unlock()
	if leak {
		soakKept = append(soakKept, made)
		block := make(chan struct{})
		soakKept = append(soakKept, []any{block})
		go forever(block)
	}
	return map[string]any{"kept": len(soakKept)}, nil
}
