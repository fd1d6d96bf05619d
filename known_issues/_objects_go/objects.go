// Package kiobjects is the opening the ObjectStore programs in known_issues/ share (KI-014,
// KI-016, KI-022): an observer (a direct connection) puts one object of random bytes, and the
// client under test connects through the proxy and opens the same bucket.
//
// Unlike kiservers it uses nats.go, so it requires the oldest release a program here pins
// (v1.32.0, KI-022's before.mod): Go takes the highest release any module requires, so each
// program still runs the release its own .mod file names.
package kiobjects

import (
	"context"
	"crypto/rand"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"kiservers"
)

// Scene: the object put, its bucket's stream as the observer sees it, and the client's
// connection with the bucket open.
type Scene struct {
	Data   []byte
	Stream jetstream.Stream
	NC     *nats.Conn
	Store  jetstream.ObjectStore
}

// Put puts `size` random bytes as object "obj" in a new bucket, then connects the client under
// test through the proxy (opts: its options) and opens the bucket; inconclusive on any error.
func Put(s *kiservers.Servers, bucket string, size int, opts ...nats.Option) *Scene {
	ctx := context.Background()
	onc, err := nats.Connect(s.NatsURL)
	if err != nil {
		kiservers.Inconclusive(err)
	}
	ojs, _ := jetstream.New(onc)
	ostore, err := ojs.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: bucket})
	if err != nil {
		kiservers.Inconclusive(err)
	}
	sc := &Scene{Data: make([]byte, size)}
	rand.Read(sc.Data)
	if _, err := ostore.PutBytes(ctx, "obj", sc.Data); err != nil {
		kiservers.Inconclusive(err)
	}
	if sc.Stream, err = ojs.Stream(ctx, "OBJ_"+bucket); err != nil {
		kiservers.Inconclusive(err)
	}
	if sc.NC, err = nats.Connect(s.ProxyURL, opts...); err != nil {
		kiservers.Inconclusive(err)
	}
	js, _ := jetstream.New(sc.NC)
	if sc.Store, err = js.ObjectStore(ctx, bucket); err != nil {
		kiservers.Inconclusive(err)
	}
	return sc
}
