package main

// The delivery ledger: which stream sequences each consumer handed to the flow, with which
// delivery count — harness/agent/ledger.py's rules and summary shape, so the delivery check
// reads nats.go's deliveries as it reads nats-py's. Bounded per consumer.
//
// Per repeat of a sequence on one consumer, with prev the highest delivery count so far:
// count > prev a redelivery (expected), == prev a duplicate, < prev a decrease.

import "sync"

const (
	ledgerLimit = 10_000 // sequences remembered per consumer
	ledgerShown = 20     // examples kept per anomaly and consumer
)

type ledgerConsumer struct {
	seen                                                      map[uint64]uint64
	order                                                     []uint64
	deliveries, redelivered, duplicates, decreases, forgotten int
	dupExamples, decExamples                                  [][]uint64
}

type ledger struct {
	mu sync.Mutex
	by map[string]*ledgerConsumer
}

func (l *ledger) record(consumer string, seq, count uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.by == nil {
		l.by = map[string]*ledgerConsumer{}
	}
	c := l.by[consumer]
	if c == nil {
		c = &ledgerConsumer{seen: map[uint64]uint64{}, dupExamples: [][]uint64{}, decExamples: [][]uint64{}}
		l.by[consumer] = c
	}
	c.deliveries++
	prev, ok := c.seen[seq]
	switch {
	case !ok:
		c.seen[seq] = count
		c.order = append(c.order, seq)
		if len(c.order) > ledgerLimit {
			delete(c.seen, c.order[0])
			c.order = c.order[1:]
			c.forgotten++
		}
	case count > prev:
		c.redelivered++
		c.seen[seq] = count
	case count == prev:
		c.duplicates++
		if len(c.dupExamples) < ledgerShown {
			c.dupExamples = append(c.dupExamples, []uint64{seq, count})
		}
	default:
		c.decreases++
		if len(c.decExamples) < ledgerShown {
			c.decExamples = append(c.decExamples, []uint64{seq, prev, count})
		}
	}
}

// summary: per consumer, as DeliveryLedger.summary(); nil when the flow saw no deliveries.
func (l *ledger) summary() map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.by) == 0 {
		return nil
	}
	out := map[string]any{}
	for name, c := range l.by {
		out[name] = map[string]any{
			"deliveries": c.deliveries, "sequences": len(c.seen) + c.forgotten, "redelivered": c.redelivered,
			"duplicates": c.duplicates, "duplicate_examples": c.dupExamples,
			"decreases": c.decreases, "decrease_examples": c.decExamples, "forgotten": c.forgotten,
		}
	}
	return out
}
