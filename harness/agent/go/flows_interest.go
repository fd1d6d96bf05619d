package main

// interest.ack_async: harness/flows/interest.py's flow in Go — an interest-retention stream
// read by a push queue group (two subscribers bound to one durable with flow control and
// heartbeats) and two pull workers, every message acked fire-and-forget. The observer
// prepares the stream, the three durables and the messages. The legacy JetStreamContext:
// every release the agent builds for has these calls.

import (
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

func init() { register("interest.ack_async", interestAckAsync) }

// interestSeen: the distinct stream sequences each consumer handed to the flow.
type interestSeen struct {
	mu    sync.Mutex
	by    map[string]map[uint64]bool
	count int
	done  chan struct{}
	once  sync.Once
}

func (s *interestSeen) got(f *Flow, consumer string, m *nats.Msg) {
	md, err := m.Metadata()
	if err != nil {
		return
	}
	f.Delivered(md.Consumer, md.Sequence.Stream, md.NumDelivered)
	s.mu.Lock()
	s.by[consumer][md.Sequence.Stream] = true
	all := true
	for _, seqs := range s.by {
		all = all && len(seqs) >= s.count
	}
	s.mu.Unlock()
	if all {
		s.once.Do(func() { close(s.done) })
	}
}

// least and most: the fewest and the most distinct sequences any one consumer has.
func (s *interestSeen) least() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := -1
	for _, seqs := range s.by {
		if n < 0 || len(seqs) < n {
			n = len(seqs)
		}
	}
	return n
}

func (s *interestSeen) most() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, seqs := range s.by {
		if len(seqs) > n {
			n = len(seqs)
		}
	}
	return n
}

func interestAckAsync(f *Flow) (map[string]any, error) {
	js, err := f.NC.JetStream()
	if err != nil {
		return nil, err
	}
	count := f.Int("count")
	group := f.Consumer() + "_workers"
	pulls := []string{f.Consumer() + "_p1", f.Consumer() + "_p2"}
	seen := &interestSeen{by: map[string]map[uint64]bool{group: {}}, count: count, done: make(chan struct{})}
	for _, d := range pulls {
		seen.by[d] = map[uint64]bool{}
	}
	progress := func() string { return fmt.Sprintf("%d of %d messages on every consumer", seen.least(), count) }

	subs := []*nats.Subscription{}
	defer func() {
		for _, s := range subs {
			s.Unsubscribe() // already gone with a closed connection: nothing to do
		}
	}()
	for i := 0; i < 2; i++ {
		sub, err := js.QueueSubscribe(f.Subject()+".>", group, func(m *nats.Msg) {
			seen.got(f, group, m)
			m.Ack() // fire and forget: a reply is never awaited
		}, nats.Bind(f.Stream(), group), nats.ManualAck())
		if err != nil {
			return nil, err
		}
		sub.SetPendingLimits(-1, -1)
		subs = append(subs, sub)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var errMu sync.Mutex
	fetchErrors := []string{} // what Fetch returned besides timeouts (reported with the result)
	for _, d := range pulls {
		psub, err := js.PullSubscribe("", d, nats.Bind(f.Stream(), d))
		if err != nil {
			close(stop)
			return nil, err
		}
		wg.Add(1)
		go func(d string, psub *nats.Subscription) {
			defer wg.Done()
			defer psub.Unsubscribe()
			for {
				select {
				case <-stop:
					return
				default:
				}
				msgs, err := psub.Fetch(f.Int("batch"), nats.MaxWait(f.Dur("fetch_timeout")))
				if err != nil && !isTimeout(err) {
					// e.g. a status while the consumer's leader moves: a careful worker retries
					errMu.Lock()
					fetchErrors = append(fetchErrors, fmt.Sprintf("%s: %s: %v", d, typeName(err), err))
					errMu.Unlock()
					time.Sleep(100 * time.Millisecond)
				}
				for _, m := range msgs {
					seen.got(f, d, m)
					m.Ack()
				}
			}
		}(d, psub)
	}
	stopped := false
	stopWorkers := func() {
		if !stopped {
			stopped = true
			close(stop)
			waitBounded(&wg, 3*time.Second) // a worker cut off by the fault: its error is not this flow's result
		}
	}
	defer stopWorkers()

	result := func() map[string]any {
		errMu.Lock()
		defer errMu.Unlock()
		examples := fetchErrors
		if len(examples) > 3 {
			examples = examples[:3]
		}
		return map[string]any{"received": seen.least(), "consumers": len(seen.by), "fetch_errors": len(fetchErrors),
			"fetch_error_examples": append([]string{}, examples...)}
	}

	for seen.most() < count/4 { // the fault goes in with acks in flight
		if err := f.CheckDeadline(progress()); err != nil {
			return result(), err
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := f.Checkpoint("in_call"); err != nil {
		return result(), err
	}
	for done := false; !done; {
		if err := f.CheckDeadline(progress()); err != nil {
			return result(), err
		}
		f.Call("every consumer's last message", func() error {
			select {
			case <-seen.done:
				done = true
			case <-time.After(500 * time.Millisecond):
			}
			return nil
		})
	}
	// Acks lost to the fault come back as redeliveries after ack_wait: a careful consumer is
	// still there to ack them (the interest check judges only once every consumer acked all).
	for linger := time.Now().Add(f.Dur("linger")); time.Now().Before(linger); {
		if err := f.CheckDeadline("every message, lingering for redeliveries"); err != nil {
			return result(), err
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := f.Call("flush", func() error { return f.NC.FlushTimeout(2 * time.Second) }); err != nil { // the last acks reach the server
		return result(), err
	}
	stopWorkers()
	return result(), nil
}

// waitBounded waits for wg, at most d.
func waitBounded(wg *sync.WaitGroup, d time.Duration) {
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(d):
	}
}
