package main

// The cancel family on nats.go (harness/faults/cancel.py): the flow's *waiting call* runs
// with a context the agent can end — cancel it (cancel.task, cancel.repeat) or give it a
// deadline that fires while it waits (cancel.deadline) — and what the flow did after, with
// the same objects, is recorded for the checks (harness/agent/ledger.py's Continuation:
// same summary keys). Events "cancel issued" and "waiting call ended" are the fault's evidence.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// CallCancelled: the waiting call ended because the caller gave up (how: cancelled | deadline).
type CallCancelled struct{ label, how string }

func (e *CallCancelled) Error() string { return e.label + ": " + e.how }

// cancelKinds: the agent actions of the cancel family -> how the call is ended.
var cancelKinds = map[string]string{"cancel_task": "cancelled", "cancel_deadline": "deadline", "cancel_repeat": "cancelled",
	"cancel_race": "cancelled"}

// giveUpCtx is the waiting call's context: it ends with its parent (the call's own timeout,
// the flow's context) or when the cancel family ends it — Canceled, or DeadlineExceeded
// with Deadline() reporting the deadline it was given.
type giveUpCtx struct {
	context.Context
	mu       sync.Mutex
	done     chan struct{}
	err      error
	deadline time.Time
	stop     func() bool
}

func newGiveUpCtx(parent context.Context) *giveUpCtx {
	c := &giveUpCtx{Context: parent, done: make(chan struct{})}
	c.stop = context.AfterFunc(parent, func() { c.end(parent.Err()) })
	return c
}

func (c *giveUpCtx) Done() <-chan struct{} { return c.done }

func (c *giveUpCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *giveUpCtx) Deadline() (time.Time, bool) {
	c.mu.Lock()
	own := c.deadline
	c.mu.Unlock()
	if p, ok := c.Context.Deadline(); ok && (own.IsZero() || p.Before(own)) {
		return p, true
	}
	return own, !own.IsZero()
}

func (c *giveUpCtx) end(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
		close(c.done)
	}
}

func (c *giveUpCtx) expire(after time.Duration) {
	c.mu.Lock()
	c.deadline = time.Now().Add(after)
	c.mu.Unlock()
	time.AfterFunc(after, func() { c.end(context.DeadlineExceeded) })
}

type waitCall struct {
	label  string
	since  time.Time
	ctx    *giveUpCtx
	ended  chan struct{}
	mu     sync.Mutex
	how    string    // what the cancel family did: cancelled | deadline
	gaveUp time.Time // when the caller gave up (the cancel; the deadline's moment)
}

func (w *waitCall) acted() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.how
}

func (w *waitCall) gaveUpAt() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.gaveUp
}

// cancelState: per flow, its waiting calls in flight, the cancels still to come and the continuation.
type cancelState struct {
	mu          sync.Mutex
	calls       []*waitCall
	cancelsLeft int
	cont        continuation
}

var (
	cancelMu     sync.Mutex
	cancelStates = map[*Flow]*cancelState{}
)

func stateOf(f *Flow) *cancelState {
	cancelMu.Lock()
	defer cancelMu.Unlock()
	s := cancelStates[f]
	if s == nil {
		s = &cancelState{}
		cancelStates[f] = s
	}
	return s
}

// CancelsLeft: how many more waiting calls the running cancel fault will cancel (cancel.repeat).
func (f *Flow) CancelsLeft() int {
	s := stateOf(f)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cancelsLeft
}

// Cont is the flow's continuation record.
func (f *Flow) Cont() *continuation { return &stateOf(f).cont }

// Wait runs the flow's waiting call (tracked as pending) with a context the cancel family
// can end, derived from one with the call's own `timeout` (0: none). It returns
// *CallCancelled if the caller gave up, else the call's own error.
func (f *Flow) Wait(label string, timeout time.Duration, fn func(ctx context.Context) error) error {
	parent, cancel := context.WithCancel(f.Ctx)
	if timeout > 0 {
		parent, cancel = context.WithTimeout(f.Ctx, timeout)
	}
	defer cancel()
	w := &waitCall{label: label, since: time.Now(), ctx: newGiveUpCtx(parent), ended: make(chan struct{})}
	defer w.ctx.stop()
	s := stateOf(f)
	s.mu.Lock()
	s.calls = append(s.calls, w)
	s.mu.Unlock()
	err := f.Call(label, func() error { return fn(w.ctx) })
	s.mu.Lock()
	for i, c := range s.calls {
		if c == w {
			s.calls = append(s.calls[:i], s.calls[i+1:]...)
			break
		}
	}
	s.mu.Unlock()
	close(w.ended)
	how, acted := "value", w.acted()
	switch {
	case err == nil:
	case acted != "":
		how = acted
	case isTimeout(err):
		how = "timeout"
	default:
		how = "error"
	}
	took := time.Since(w.since).Seconds()
	afterCancel := -1.0
	if g := w.gaveUpAt(); !g.IsZero() {
		afterCancel = max(time.Since(g).Seconds(), 0)
	}
	s.cont.waited(label, how, took, afterCancel)
	f.a.emit("waiting call ended", map[string]any{"label": label, "how": how, "cancel": acted, "took": round4(took)})
	if how == "cancelled" || how == "deadline" {
		s.mu.Lock()
		s.cancelsLeft = max(s.cancelsLeft-1, 0) // one of the fault's cancels spent
		s.mu.Unlock()
		return &CallCancelled{label, how}
	}
	return err
}

// WaitAgain makes the waiting call again while the cancel fault has more cancels to make
// (fn accounts for a value it gets); nil once it ended by a cancellation or its own timeout.
func (f *Flow) WaitAgain(label string, timeout time.Duration, fn func(ctx context.Context) error) error {
	for {
		err := f.Wait(label, timeout, fn)
		var cc *CallCancelled
		if errors.As(err, &cc) {
			if f.CancelsLeft() > 0 {
				continue
			}
			return nil
		}
		if err != nil && isTimeout(err) {
			return nil
		}
		if err == nil && f.CancelsLeft() > 0 { // a value that arrived as the caller gave up (cancel.race): fn took it
			continue
		}
		return err
	}
}

// WaitInCall: the in_call barrier, then the flow's waiting call (WaitAgain) bounded by the
// JetStream default timeout — how the API flows and the continue.* flows open.
func (f *Flow) WaitInCall(label string, fn func(ctx context.Context) error) error {
	if err := f.Checkpoint("in_call"); err != nil {
		return err
	}
	return f.WaitAgain(label, jsTimeout, fn)
}

// cancelWaiting is the agent's cancel action: `cancels` times, wait for a waiting call the
// fault has not acted on, end it, and wait (up to `bound`) until it returned.
func (a *agent) cancelWaiting(how string, req request) (map[string]any, error) {
	race := req["name"] == "cancel_race" // a message on its way as the caller gives up
	a.mu.Lock()
	f, flowDone := a.flow, a.flowDone
	a.mu.Unlock()
	if f == nil {
		return nil, errors.New("no flow started")
	}
	ended := func() bool { // nothing left to cancel: the flow is over
		select {
		case <-flowDone:
			return true
		default:
			return false
		}
	}
	n := int(orNum(req["cancels"], 1))
	after := seconds(orNum(req["after"], 0.2))
	bound := seconds(orNum(req["bound"], 10))
	kind := map[string]string{"cancelled": "task", "deadline": "deadline"}[how]
	s := stateOf(f)
	t := time.Now()
	calls := []map[string]any{}
	s.mu.Lock()
	s.cancelsLeft = n // the flow counts them down as its calls end cancelled (Wait)
	s.mu.Unlock()
	for i := 0; i < n; i++ {
		var w *waitCall
		for end := time.Now().Add(bound); w == nil && time.Now().Before(end) && !ended(); {
			s.mu.Lock()
			for _, c := range s.calls {
				if c.acted() == "" {
					w = c
					break
				}
			}
			s.mu.Unlock()
			if w == nil {
				time.Sleep(5 * time.Millisecond)
			}
		}
		if w == nil {
			s.mu.Lock()
			s.cancelsLeft = 0
			s.mu.Unlock()
			return map[string]any{"took": round4(time.Since(t).Seconds()), "calls": calls, "none_waiting": true}, nil
		}
		if race {
			id := fmt.Sprintf("race-%d", i)
			f.Cont().Publish(id)
			// Not flushed: the client's flusher sends it within microseconds, and the cancel lands
			// 0..ticks x 50 µs later, around its delivery (a flushed one always arrived first).
			f.NC.Publish(f.Subject()+".m", []byte(id))
			time.Sleep(time.Duration(rand.IntN(int(orNum(req["ticks"], 6))+1)) * 50 * time.Microsecond)
		}
		w.mu.Lock()
		w.how, w.gaveUp = how, time.Now()
		if how == "deadline" {
			w.gaveUp = w.gaveUp.Add(after)
		}
		w.mu.Unlock()
		if how == "deadline" {
			w.ctx.expire(after)
		} else {
			w.ctx.end(context.Canceled)
		}
		a.emit("cancel issued", map[string]any{"label": w.label, "kind": kind, "age": round4(time.Since(w.since).Seconds())})
		returned := false
		select {
		case <-w.ended:
			returned = true
		case <-time.After(bound):
		}
		calls = append(calls, map[string]any{"label": w.label, "ended": returned})
		if !returned { // the call ignored its cancellation: the flow stays pending (iterators)
			break
		}
	}
	s.mu.Lock()
	s.cancelsLeft = 0 // a call that returned a value instead left one unspent
	s.mu.Unlock()
	return map[string]any{"took": round4(time.Since(t).Seconds()), "calls": calls}, nil
}

// continuation: harness/agent/ledger.py's Continuation (same summary keys).
type continuation struct {
	mu        sync.Mutex
	ended     []map[string]any
	published []string
	got       map[string]bool
	calls     int
	overran   []map[string]any
}

// waited records how a waiting call ended; afterCancel < 0: the caller did not give up on it.
func (c *continuation) waited(label, how string, took, afterCancel float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.ended) < ledgerLimit {
		e := map[string]any{"label": label, "how": how, "took": round4(took)}
		if afterCancel >= 0 {
			e["after_cancel"] = round4(afterCancel)
		}
		c.ended = append(c.ended, e)
	}
}

// Publish records ids published after the waiting call.
func (c *continuation) Publish(ids ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.published = append(c.published, ids...)
}

// Received records an id the continuing caller got (only ids published after the call count).
func (c *continuation) Received(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.published {
		if p == id {
			if c.got == nil {
				c.got = map[string]bool{}
			}
			c.got[id] = true
		}
	}
}

func (c *continuation) Missing() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.missingLocked()
}

func (c *continuation) missingLocked() []string {
	out := []string{}
	for _, p := range c.published {
		if !c.got[p] {
			out = append(out, p)
		}
	}
	return out
}

// Call records one next call with the same objects against its own timeout.
func (c *continuation) Call(label string, took time.Duration, timeout time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if took > timeout && len(c.overran) < ledgerShown {
		c.overran = append(c.overran, map[string]any{"label": label, "took": round4(took.Seconds()), "timeout": timeout.Seconds()})
	}
}

func (c *continuation) summary() map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.ended) == 0 && len(c.published) == 0 && c.calls == 0 {
		return nil
	}
	missing := c.missingLocked()
	shown := missing
	if len(shown) > ledgerShown {
		shown = shown[:ledgerShown]
	}
	ended := c.ended
	if len(ended) > ledgerShown {
		ended = ended[:ledgerShown]
	}
	overran := c.overran
	if overran == nil {
		overran = []map[string]any{}
	}
	return map[string]any{"ended": ended, "published": len(c.published), "delivered": len(c.got), "missing": shown,
		"missing_count": len(missing), "calls": c.calls, "overran": overran}
}

// continuationOf: the flow's continuation summary for the outcome event (nil if none), and
// the flow's cancel state dropped (the flow is over).
func continuationOf(f *Flow) map[string]any {
	cancelMu.Lock()
	s := cancelStates[f]
	delete(cancelStates, f)
	cancelMu.Unlock()
	if s == nil {
		return nil
	}
	return s.cont.summary()
}

// Timed runs one next call with the same objects, tracked as pending, its time recorded
// against its own timeout.
func (f *Flow) Timed(label string, timeout time.Duration, fn func() error) error {
	t := time.Now()
	err := f.Call(label, fn)
	f.Cont().Call(label, time.Since(t), timeout)
	return err
}

func afterIDs(f *Flow) []string {
	out := []string{}
	for i := 0; i < f.Int("after"); i++ {
		out = append(out, fmt.Sprintf("after-%d", i))
	}
	return out
}
