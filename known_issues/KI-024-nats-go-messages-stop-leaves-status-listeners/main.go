// KI-024: nats.go's jetstream Consumer.Messages() registers two connection status listeners
// (nc.StatusChanged) that MessagesContext.Stop() never removes: a service that takes and
// stops an iterator per batch grows them without end (and their channels, and the heap).
//
// Standalone: nats.go and a real nats-server; no harness code. The listeners are counted
// from the connection's statListeners map (unexported: read by reflection under its lock),
// the heap after runtime.GC(). go.mod pins an affected release; `go run -modfile=ok.mod .`
// runs the first fixed one.
package main

import (
	"context"
	"fmt"
	"reflect"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"kiservers"
)

const rounds, count = 200, 10

// listeners: the status channels the connection keeps (nc.StatusChanged registrations).
func listeners(nc *nats.Conn) int {
	cv := reflect.ValueOf(nc).Elem()
	lf, mf := cv.FieldByName("statListeners"), cv.FieldByName("mu")
	mu := reflect.NewAt(mf.Type(), unsafe.Pointer(mf.UnsafeAddr())).Interface().(*sync.RWMutex)
	m := reflect.NewAt(lf.Type(), unsafe.Pointer(lf.UnsafeAddr())).Elem()
	mu.RLock()
	defer mu.RUnlock()
	n := 0
	for it := m.MapRange(); it.Next(); {
		n += it.Value().Len()
	}
	return n
}

func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func main() {
	s := kiservers.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nc, err := nats.Connect(s.NatsURL)
	if err != nil {
		kiservers.Inconclusive(err)
	}
	js, _ := jetstream.New(nc)
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "KI024", Subjects: []string{"ki024.>"}})
	if err != nil {
		kiservers.Inconclusive(err)
	}
	for i := 0; i < count; i++ {
		if _, err := js.Publish(ctx, "ki024.m", []byte(fmt.Sprint(i))); err != nil {
			kiservers.Inconclusive(err)
		}
	}
	// What a careful user does per batch: an ephemeral consumer, Messages(), Next() until
	// every message is in (acking each), Stop(), and the consumer deleted.
	round := func() {
		cons, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy})
		if err != nil {
			kiservers.Inconclusive(err)
		}
		it, err := cons.Messages()
		if err != nil {
			kiservers.Inconclusive(err)
		}
		for i := 0; i < count; i++ {
			m, err := it.Next()
			if err != nil {
				kiservers.Inconclusive(err)
			}
			m.Ack()
		}
		it.Stop()
		stream.DeleteConsumer(ctx, cons.CachedInfo().Name)
	}
	for i := 0; i < 10; i++ { // warm-up
		round()
	}
	l0, h0 := listeners(nc), heap()
	for i := 0; i < rounds; i++ {
		round()
	}
	l1, h1 := listeners(nc), heap()
	msg := fmt.Sprintf("nats.go %s: after %d rounds of Messages()/Next()/Stop(): status listeners %d -> %d (%.2f per round), "+
		"heap %d -> %d bytes (%.0f B per round)", kiservers.NatsGoVersion(), rounds, l0, l1, float64(l1-l0)/rounds,
		h0, h1, (float64(h1)-float64(h0))/rounds)
	nc.Close()
	kiservers.Finish(l1-l0 >= rounds, msg)
}
