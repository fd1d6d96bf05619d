package main

// Bounded reads of what nats.go keeps under its own locks (the connection's mu and subsMu, a
// subscription's mu). nats.go holds nc.mu across a socket write — its flusher, and a Publish
// that fills the buffer — and a stalled link blocks that write for up to FlusherTimeout (a
// minute by default). A snapshot that waited for the lock (nc.IsConnected(), GetClientID())
// waited that long, the runner's request timed out and the scenario ended `error`, while the
// client's state was exactly what the checks should see. So every lock the agent reads under
// is taken with TryLock, polled within one budget per request; a lock still held then is
// named in the reply ("busy": evidence of what the client holds) and the reading goes on
// with what it can say without it, never waiting.

import (
	"fmt"
	"reflect"
	"sync"
	"time"
	"unsafe"
)

// lockWait: how long one snapshot (or memory sample) polls for the client's locks in all.
const lockWait = 500 * time.Millisecond

type lockBudget struct {
	start time.Time
	end   time.Time
	busy  []string
}

func newLockBudget() *lockBudget {
	t := time.Now()
	return &lockBudget{start: t, end: t.Add(lockWait)}
}

// read runs fn with a lock held, taken by polling try until the budget ends; false, with
// `what` noted busy, if the lock stayed held.
func (b *lockBudget) read(what string, try func() bool, unlock func(), fn func()) bool {
	for !try() {
		if !time.Now().Before(b.end) {
			b.busy = append(b.busy, fmt.Sprintf("%s held by the client for %.2fs (the agent read around it)", what, time.Since(b.start).Seconds()))
			return false
		}
		time.Sleep(time.Millisecond)
	}
	defer unlock()
	fn()
	return true
}

func (b *lockBudget) rlock(what string, mu *sync.RWMutex, fn func()) bool {
	return b.read(what, mu.TryRLock, mu.RUnlock, fn)
}

func (b *lockBudget) lock(what string, mu *sync.Mutex, fn func()) bool {
	return b.read(what, mu.TryLock, mu.Unlock, fn)
}

// field: an unexported field of a struct value made readable (the zero Value if absent).
func field(v reflect.Value, name string) reflect.Value {
	f := v.FieldByName(name)
	if !f.IsValid() || !f.CanAddr() {
		return reflect.Value{}
	}
	return reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem()
}

// rwMutex / mutex: a lock field of a nats.go struct, nil if this release lays it out otherwise.
func rwMutex(v reflect.Value, name string) *sync.RWMutex {
	if f := field(v, name); f.IsValid() && f.CanAddr() {
		mu, _ := f.Addr().Interface().(*sync.RWMutex)
		return mu
	}
	return nil
}

func mutex(v reflect.Value, name string) *sync.Mutex {
	if f := field(v, name); f.IsValid() && f.CanAddr() {
		mu, _ := f.Addr().Interface().(*sync.Mutex)
		return mu
	}
	return nil
}
