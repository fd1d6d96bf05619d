package main

// Self-test flows: misbehave on purpose (and their clean twins), to prove the checks
// catch a nats.go client's faults the way they catch nats-py's: a leaked goroutine, a
// consumer left with live interest, an iterator that misses its wake-up, CPU burnt while
// the flow waits in a call. Same names as harness/flows/selftest.py.

import (
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

var leaked []any // kept referenced, as a buggy library would

func init() {
	register("selftest.leak_task", selftestLeakTask)
	register("selftest.clean_task", selftestCleanTask)
	register("selftest.leave_consumer", func(f *Flow) (map[string]any, error) { return selftestConsumer(f, false) })
	register("selftest.clean_consumer", func(f *Flow) (map[string]any, error) { return selftestConsumer(f, true) })
	register("selftest.stuck_iterator", func(f *Flow) (map[string]any, error) { return selftestIterator(f, false) })
	register("selftest.clean_iterator", func(f *Flow) (map[string]any, error) { return selftestIterator(f, true) })
	register("selftest.spin", selftestSpin)
	register("selftest.yield", selftestYield)
	register("selftest.raises", func(f *Flow) (map[string]any, error) {
		if err := f.Checkpoint("in_call"); err != nil {
			return nil, err
		}
		return nil, errors.New("boom on a healthy link")
	})
}

func forever(block chan struct{}) { <-block }

// selftestLeakTask starts a goroutine and never ends it.
func selftestLeakTask(f *Flow) (map[string]any, error) {
	if err := f.Checkpoint("in_call"); err != nil {
		return nil, err
	}
	block := make(chan struct{})
	leaked = append(leaked, block)
	go forever(block)
	return map[string]any{}, nil
}

// selftestCleanTask starts the same goroutine and ends it before returning.
func selftestCleanTask(f *Flow) (map[string]any, error) {
	if err := f.Checkpoint("in_call"); err != nil {
		return nil, err
	}
	block := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); forever(block) }()
	close(block)
	wg.Wait()
	return map[string]any{}, nil
}

// selftestConsumer: a durable push consumer and a subscription on its deliver subject
// (live interest): kept forever, or unsubscribed and deleted.
func selftestConsumer(f *Flow, clean bool) (map[string]any, error) {
	if err := f.Checkpoint("in_call"); err != nil {
		return nil, err
	}
	js, err := f.NC.JetStream()
	if err != nil {
		return nil, err
	}
	durable := "leftover"
	if clean {
		durable = "tidy"
	}
	inbox := nats.NewInbox()
	if _, err := js.AddConsumer(f.Stream(), &nats.ConsumerConfig{Durable: durable, DeliverSubject: inbox, AckPolicy: nats.AckExplicitPolicy}); err != nil {
		return nil, err
	}
	sub, err := f.NC.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	if !clean {
		leaked = append(leaked, sub)
		return map[string]any{}, nil
	}
	defer js.DeleteConsumer(f.Stream(), durable)
	defer sub.Unsubscribe()
	return map[string]any{}, f.NC.Flush()
}

// selftestIterator: yields one item, then waits for the next; the clean one is woken by
// the flow's terminal action, the stuck one never is (a lost wake-up).
func selftestIterator(f *Flow, honourFinish bool) (map[string]any, error) {
	done := make(chan struct{})
	var once sync.Once
	if honourFinish {
		f.OnFinish(func() error { once.Do(func() { close(done) }); return nil })
	} else {
		f.OnFinish(func() error { return nil }) // the wake-up is lost
	}
	items := make(chan int, 1)
	items <- 1
	n := 0
	for {
		open := true
		if err := f.Call("messages.Next", func() error {
			select {
			case _, open = <-items:
			case <-done:
				open = false
			case <-f.Ctx.Done(): // the runner's cancel_flow, as a cancelled task in Python
				return f.Ctx.Err()
			}
			return nil
		}); err != nil {
			return nil, err
		}
		if !open {
			break
		}
		n++
		f.Received([]string{"1"})
	}
	return map[string]any{"received": n}, nil
}

// selftestSpin burns CPU inside a tracked call for `seconds`: a client call that spins
// while it should be waiting (bounded).
func selftestSpin(f *Flow) (map[string]any, error) {
	if err := f.Checkpoint("in_call"); err != nil {
		return nil, err
	}
	end := time.Now().Add(f.Dur("seconds"))
	x := 0
	f.Call("spin", func() error {
		for time.Now().Before(end) {
			x++
		}
		return nil
	})
	return map[string]any{"turns": x}, nil
}

// selftestYield waits the same time inside a tracked call, idle.
func selftestYield(f *Flow) (map[string]any, error) {
	if err := f.Checkpoint("in_call"); err != nil {
		return nil, err
	}
	err := f.Call("wait", func() error {
		select {
		case <-time.After(f.Dur("seconds")):
		case <-f.Ctx.Done():
		}
		return nil
	})
	return map[string]any{}, err
}
