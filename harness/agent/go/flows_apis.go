//go:build !nojetstream

package main

// Flows for the other APIs a caller waits on (harness/flows/apis.py's twins, same names and
// params): KV History, Purge and a Watch replaying history; ObjectStore GetInfo, List, Delete
// and Watch; a consumer's Info. Each makes its API call as the waiting call (f.WaitAgain: a
// network fault stalls it, the cancel family ends its context), then goes on with the same
// handle: writes `after` new values and reads each back through the same API.

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func init() {
	register("kv.history", apiKVHistory)
	register("kv.purge", apiKVPurge)
	register("kv.watch_history", apiKVWatchHistory)
	register("objectstore.info", apiObjectstoreInfo)
	register("objectstore.list", apiObjectstoreList)
	register("objectstore.delete", apiObjectstoreDelete)
	register("objectstore.watch", apiObjectstoreWatch)
	register("consumer.info", apiConsumerInfo)
}

// jsCall: one next call with the same handle, bounded by the JetStream default (its own timeout).
func jsCall(f *Flow, label string, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(f.Ctx, jsTimeout)
	defer cancel()
	return f.Timed(label, jsTimeout, func() error { return fn(ctx) })
}

func apiKVHistory(f *Flow) (map[string]any, error) {
	kv, err := kvBucket(f)
	if err != nil {
		return nil, err
	}
	err = f.WaitInCall("kv.history", func(ctx context.Context) error {
		h, err := kv.History(ctx, "k")
		if err == nil && len(h) != 3 {
			return &IntegrityError{fmt.Sprintf("kv.History returned %d entries, not 3", len(h))}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, id := range afterIDs(f) {
		if err := jsCall(f, "kv.put", func(ctx context.Context) error { _, err := kv.Put(ctx, "k", []byte(id)); return err }); err != nil {
			return nil, err
		}
		f.Cont().Publish(id)
		err := jsCall(f, "kv.history", func(ctx context.Context) error {
			h, err := kv.History(ctx, "k")
			if err == nil && len(h) > 0 {
				f.Cont().Received(string(h[len(h)-1].Value()))
			}
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	return continueResult(f, nil), nil
}

func apiKVPurge(f *Flow) (map[string]any, error) {
	kv, err := kvBucket(f)
	if err != nil {
		return nil, err
	}
	if err := f.WaitInCall("kv.purge", func(ctx context.Context) error { return kv.Purge(ctx, "k") }); err != nil {
		return nil, err
	}
	for _, id := range afterIDs(f) {
		if err := jsCall(f, "kv.put", func(ctx context.Context) error { _, err := kv.Put(ctx, "k", []byte(id)); return err }); err != nil {
			return nil, err
		}
		f.Cont().Publish(id)
		err := jsCall(f, "kv.get", func(ctx context.Context) error {
			e, err := kv.Get(ctx, "k")
			if err == nil {
				f.Cont().Received(string(e.Value()))
			}
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	return continueResult(f, nil), nil
}

// updates: the next value from a watcher's channel, or the context's end (nil, false at close).
func updates[T any](ctx context.Context, ch <-chan T) (T, bool, error) {
	var zero T
	select {
	case v, ok := <-ch:
		return v, ok, nil
	case <-ctx.Done():
		return zero, true, ctx.Err()
	}
}

// takeUpdates: values from the same watcher until every one written after the waiting call is seen.
func takeUpdates[T any](f *Flow, ch <-chan T, ident func(T) string) error {
	nt := f.Dur("next_timeout")
	for end := time.Now().Add(f.Dur("after_wait")); len(f.Cont().Missing()) > 0 && time.Now().Before(end); {
		ctx, cancel := context.WithTimeout(f.Ctx, nt)
		var v T
		var open bool
		err := f.Timed("watch.updates", nt, func() error { var err error; v, open, err = updates(ctx, ch); return err })
		cancel()
		if isTimeout(err) {
			continue
		}
		if err != nil {
			return err
		}
		if !open {
			return fmt.Errorf("the watcher's updates closed")
		}
		f.Cont().Received(ident(v))
	}
	return nil
}

func apiKVWatchHistory(f *Flow) (map[string]any, error) {
	kv, err := kvBucket(f)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(f.Ctx) // the watch lives as long as its context
	defer cancel()
	w, err := kv.Watch(wctx, "k", jetstream.IncludeHistory())
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	seen := []string{}
	for {
		if err := f.CheckDeadline(fmt.Sprintf("%d of 3 history entries", len(seen))); err != nil {
			return nil, err
		}
		ctx, c := context.WithTimeout(f.Ctx, f.Dur("next_timeout"))
		var e jetstream.KeyValueEntry
		err := f.Call("kv.watch.Updates", func() error { var err error; e, _, err = updates(ctx, w.Updates()); return err })
		c()
		if err != nil && !isTimeout(err) {
			return nil, err
		}
		if err == nil && e == nil {
			break
		}
		if e != nil {
			seen = append(seen, string(e.Value()))
		}
	}
	if strings.Join(seen, ",") != "v0,v1,v2" {
		return nil, &IntegrityError{fmt.Sprintf("the watch replayed %v, not v0..v2", seen)}
	}
	f.Received(seen)
	err = f.WaitAgain("kv.watch.Updates", f.Dur("wait_timeout"), func(ctx context.Context) error {
		_, _, err := updates(ctx, w.Updates())
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, id := range afterIDs(f) {
		if err := jsCall(f, "kv.put", func(ctx context.Context) error { _, err := kv.Put(ctx, "k", []byte(id)); return err }); err != nil {
			return nil, err
		}
		f.Cont().Publish(id)
	}
	return continueResult(f, nil), takeUpdates(f, w.Updates(), func(e jetstream.KeyValueEntry) string {
		if e == nil {
			return ""
		}
		return string(e.Value())
	})
}

func putObjects(f *Flow, obs jetstream.ObjectStore) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, id := range afterIDs(f) {
		data := []byte(strings.Repeat(id, 1024))
		if err := jsCall(f, "objectstore.put", func(ctx context.Context) error { _, err := obs.PutBytes(ctx, id, data); return err }); err != nil {
			return nil, err
		}
		f.Cont().Publish(id)
		out[id] = data
	}
	return out, nil
}

func apiObjectstoreInfo(f *Flow) (map[string]any, error) {
	obs, err := objectStore(f)
	if err != nil {
		return nil, err
	}
	if err := f.WaitInCall("objectstore.info", func(ctx context.Context) error { _, err := obs.GetInfo(ctx, "obj"); return err }); err != nil {
		return nil, err
	}
	put, err := putObjects(f, obs)
	if err != nil {
		return nil, err
	}
	for _, id := range afterIDs(f) {
		err := jsCall(f, "objectstore.info", func(ctx context.Context) error {
			info, err := obs.GetInfo(ctx, id)
			if err == nil && int(info.Size) == len(put[id]) {
				f.Cont().Received(id)
			}
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	return continueResult(f, nil), nil
}

func apiObjectstoreList(f *Flow) (map[string]any, error) {
	obs, err := objectStore(f)
	if err != nil {
		return nil, err
	}
	if err := f.WaitInCall("objectstore.list", func(ctx context.Context) error { _, err := obs.List(ctx); return err }); err != nil {
		return nil, err
	}
	if _, err := putObjects(f, obs); err != nil {
		return nil, err
	}
	err = jsCall(f, "objectstore.list", func(ctx context.Context) error {
		infos, err := obs.List(ctx)
		for _, info := range infos {
			f.Cont().Received(info.Name)
		}
		return err
	})
	return continueResult(f, nil), err
}

func apiObjectstoreDelete(f *Flow) (map[string]any, error) {
	obs, err := objectStore(f)
	if err != nil {
		return nil, err
	}
	if err := f.WaitInCall("objectstore.delete", func(ctx context.Context) error { return obs.Delete(ctx, "obj") }); err != nil {
		return nil, err
	}
	put, err := putObjects(f, obs)
	if err != nil {
		return nil, err
	}
	for _, id := range afterIDs(f) {
		err := jsCall(f, "objectstore.get", func(ctx context.Context) error {
			got, err := obs.GetBytes(ctx, id)
			if err == nil && bytes.Equal(got, put[id]) {
				f.Cont().Received(id)
			}
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	return continueResult(f, nil), nil
}

func apiObjectstoreWatch(f *Flow) (map[string]any, error) {
	obs, err := objectStore(f)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(f.Ctx)
	defer cancel()
	w, err := obs.Watch(wctx)
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	seen := []string{}
	for {
		if err := f.CheckDeadline(fmt.Sprintf("%d current objects", len(seen))); err != nil {
			return nil, err
		}
		ctx, c := context.WithTimeout(f.Ctx, f.Dur("next_timeout"))
		var info *jetstream.ObjectInfo
		err := f.Call("objectstore.watch.Updates", func() error { var err error; info, _, err = updates(ctx, w.Updates()); return err })
		c()
		if err != nil && !isTimeout(err) {
			return nil, err
		}
		if err == nil && info == nil {
			break
		}
		if info != nil {
			seen = append(seen, info.Name)
		}
	}
	f.Received(seen)
	err = f.WaitAgain("objectstore.watch.Updates", f.Dur("wait_timeout"), func(ctx context.Context) error {
		_, _, err := updates(ctx, w.Updates())
		return err
	})
	if err != nil {
		return nil, err
	}
	if _, err := putObjects(f, obs); err != nil {
		return nil, err
	}
	return continueResult(f, nil), takeUpdates(f, w.Updates(), func(info *jetstream.ObjectInfo) string {
		if info == nil {
			return ""
		}
		return info.Name
	})
}

// fetchAfter: publish `after` new messages and take them through the observer's durable
// (idle: as takeAfter's).
func fetchAfter(f *Flow, idle ...func() error) error {
	js, sub, err := pullBound(f)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	if err := publishAfter(f, js); err != nil {
		return err
	}
	return takeAfter(f, "fetch", func() ([]*nats.Msg, error) { return sub.Fetch(5, nats.MaxWait(f.Dur("next_timeout"))) }, idle...)
}

func apiConsumerInfo(f *Flow) (map[string]any, error) {
	cons, err := durable(f)
	if err != nil {
		return nil, err
	}
	if err := f.WaitInCall("consumer.info", func(ctx context.Context) error { _, err := cons.Info(ctx); return err }); err != nil {
		return nil, err
	}
	return continueResult(f, nil), fetchAfter(f)
}
