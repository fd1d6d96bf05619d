package main

// Self-tests of the cancel family (harness/flows/selftest_cancel.py's twins): a toy message
// source whose cancelled waiter swallows the next message (the delivery check must catch it
// every time), and its clean twin (must pass every time).

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

func init() {
	register("selftest.cancel_swallows_next", func(f *Flow) (map[string]any, error) { return selftestCancel(f, false) })
	register("selftest.cancel_clean", func(f *Flow) (map[string]any, error) { return selftestCancel(f, true) })
}

// toySource: a message goes to the first waiter, else into a queue. The leaky one leaves a
// waiter whose caller gave up in the list, and the next message is handed to it — lost.
type toySource struct {
	clean   bool
	mu      sync.Mutex
	waiters []chan *nats.Msg
	queue   []*nats.Msg
}

func (s *toySource) deliver(m *nats.Msg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.waiters) > 0 {
		w := s.waiters[0]
		s.waiters = s.waiters[1:]
		w <- m // buffered: never blocks; a waiter that gave up never reads it (the leaky one)
		return
	}
	s.queue = append(s.queue, m)
}

func (s *toySource) next(ctx context.Context) (*nats.Msg, error) {
	s.mu.Lock()
	if len(s.queue) > 0 {
		m := s.queue[0]
		s.queue = s.queue[1:]
		s.mu.Unlock()
		return m, nil
	}
	w := make(chan *nats.Msg, 1)
	s.waiters = append(s.waiters, w)
	s.mu.Unlock()
	select {
	case m := <-w:
		return m, nil
	case <-ctx.Done():
		if s.clean {
			s.mu.Lock()
			defer s.mu.Unlock()
			for i, c := range s.waiters {
				if c == w {
					s.waiters = append(s.waiters[:i], s.waiters[i+1:]...)
					return nil, ctx.Err()
				}
			}
			select { // handed a message as it gave up: back to the front of the queue
			case m := <-w:
				s.queue = append([]*nats.Msg{m}, s.queue...)
			default:
			}
		}
		return nil, ctx.Err()
	}
}

func selftestCancel(f *Flow, clean bool) (map[string]any, error) {
	src := &toySource{clean: clean}
	sub, err := f.NC.Subscribe(f.Subject()+".>", src.deliver)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	js, err := f.NC.JetStream()
	if err != nil {
		return nil, err
	}
	f.Received([]string{})
	err = f.WaitAgain("source.next", f.Dur("wait_timeout"), func(ctx context.Context) error { _, err := src.next(ctx); return err })
	if err != nil {
		return nil, err
	}
	if err := publishAfter(f, js); err != nil {
		return nil, err
	}
	nt := f.Dur("next_timeout")
	for end := time.Now().Add(f.Dur("after_wait")); len(f.Cont().Missing()) > 0 && time.Now().Before(end); {
		ctx, cancel := context.WithTimeout(f.Ctx, nt)
		var m *nats.Msg
		err := f.Call("source.next", func() error { var err error; m, err = src.next(ctx); return err })
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			continue
		}
		if err != nil {
			return nil, err
		}
		f.Cont().Received(string(m.Data))
	}
	return continueResult(f, nil), nil
}
