package main

// The memory op: one soak sample of what the Go runtime manages, the counterpart of
// harness/agent/collect.py's memory() (the `memory` check fits a slope per metric over the
// rounds). RSS lags what the runtime frees (the heap keeps spans, the OS keeps pages), so
// the judged figures are the live heap after a forced collection, the heap's objects, the
// goroutines and the connection's subscriptions; RSS is recorded as context.

import (
	"reflect"
	"runtime"

	"github.com/nats-io/nats.go"
)

func (a *agent) opMemory(request) (map[string]any, error) {
	// Two cycles: finalizers queued by the first (e.g. a closed subscription's) run and free
	// what they held before the second; one sample then reads what is really still reachable.
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	nc := a.conn()
	b := newLockBudget() // a lock found held (locks.go) is named in "busy"
	out := map[string]any{
		"heap":         ms.HeapAlloc, // bytes of live heap objects right after the collection
		"heap_objects": ms.HeapObjects,
		"goroutines":   runtime.NumGoroutine(),
		"subs":         len(subscriptions(nc, b)),
		"listeners":    statusListeners(nc, b),
		"rss":          process()["rss"],
	}
	if len(b.busy) > 0 {
		out["busy"] = b.busy
	}
	return out, nil
}

// statusListeners: the status channels the connection keeps (nc.StatusChanged(), from
// v1.29.0), by reflection as the subscriptions are read, under the connection's own lock
// (bounded); 0 where a release has none. A flow that asks for one per round and never
// drops it grows this (and leaks its goroutine).
func statusListeners(nc *nats.Conn, b *lockBudget) int {
	if nc == nil {
		return 0
	}
	cv := reflect.ValueOf(nc).Elem()
	m, mu := field(cv, "statListeners"), rwMutex(cv, "mu")
	if !m.IsValid() || m.Kind() != reflect.Map || mu == nil {
		return 0
	}
	n := 0
	b.rlock("nc.mu (the connection's lock)", mu, func() {
		it := m.MapRange()
		for it.Next() {
			if v := it.Value(); v.Kind() == reflect.Slice || v.Kind() == reflect.Map {
				n += v.Len()
			}
		}
	})
	return n
}
