//go:build !nojetstream

package main

// The continue.* flows on the jetstream package (KV, ObjectStore and the pull iterator take a
// context per call there): see flows_cancel.go.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

func init() {
	register("continue.kv_get", continueKVGet)
	register("continue.objectstore_get", continueObjectstoreGet)
}

// continueKVGet: a KV Get that waits (under a stall), given up; then a Put and a Get of the
// new value with the same bucket handle, `after` times.
func continueKVGet(f *Flow) (map[string]any, error) {
	kv, err := kvBucket(f)
	if err != nil {
		return nil, err
	}
	err = f.WaitInCall("kv.get", func(ctx context.Context) error { _, err := kv.Get(ctx, "k"); return err })
	if err != nil {
		return nil, err
	}
	for _, id := range afterIDs(f) {
		ctx, cancel := context.WithTimeout(f.Ctx, jsTimeout)
		err := f.Timed("kv.put", jsTimeout, func() error { _, err := kv.Put(ctx, "k", []byte(id)); return err })
		if err == nil {
			f.Cont().Publish(id)
			var e jetstream.KeyValueEntry
			err = f.Timed("kv.get", jsTimeout, func() error { var err error; e, err = kv.Get(ctx, "k"); return err })
			if err == nil {
				f.Cont().Received(string(e.Value()))
			}
		}
		cancel()
		if err != nil {
			return continueResult(f, nil), err
		}
	}
	return continueResult(f, nil), nil
}

// continueObjectstoreGet: an ObjectStore Get given up mid-transfer, then the same bucket
// handle: put new objects and get each whole.
func continueObjectstoreGet(f *Flow) (map[string]any, error) {
	obs, err := objectStore(f)
	if err != nil {
		return nil, err
	}
	if err := f.Checkpoint("in_call"); err != nil {
		return nil, err
	}
	gt := f.Dur("get_timeout")
	err = f.WaitAgain("objectstore.get", gt, func(ctx context.Context) error {
		r, err := obs.Get(ctx, "obj")
		if err != nil {
			return err
		}
		defer r.Close()
		data, err := io.ReadAll(r)
		if err == nil && len(data) != f.Int("size") {
			return &IntegrityError{fmt.Sprintf("object truncated: got %d of %d bytes, no error returned", len(data), f.Int("size"))}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, id := range afterIDs(f) {
		data := []byte(strings.Repeat(id, 4096))
		ctx, cancel := context.WithTimeout(f.Ctx, gt)
		err := f.Timed("objectstore.put", jsTimeout, func() error { _, err := obs.PutBytes(ctx, id, data); return err })
		if err == nil {
			f.Cont().Publish(id)
			var got []byte
			err = f.Timed("objectstore.get", gt, func() error { var err error; got, err = obs.GetBytes(ctx, id); return err })
			if err == nil && bytes.Equal(got, data) {
				f.Cont().Received(id)
			} else if err == nil {
				err = &IntegrityError{fmt.Sprintf("object %s: got %d of %d bytes, no error returned", id, len(got), len(data))}
			}
		}
		cancel()
		if err != nil {
			return continueResult(f, nil), err
		}
	}
	return continueResult(f, nil), nil
}
