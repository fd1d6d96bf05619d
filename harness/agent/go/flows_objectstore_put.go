//go:build !nojetstream

package main

// objectstore.put: harness/flows/publish.py's flow in Go (same name and params) on the
// jetstream package — put a multi-chunk object while the fault is in, then look at the
// result through the same connection, as an application checking its work would: a put
// that succeeded reads back byte for byte; a put that failed leaves nothing in the bucket.

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func init() { register("objectstore.put", objectstorePut) }

func objectstorePut(f *Flow) (map[string]any, error) {
	js, err := jetstream.New(f.NC)
	if err != nil {
		return nil, err
	}
	obs, err := js.ObjectStore(f.Ctx, f.Bucket())
	if err != nil {
		return nil, err
	}
	data := make([]byte, f.Int("size"))
	if _, err := rand.Read(data); err != nil {
		return nil, err
	}
	if err := f.Checkpoint("in_call"); err != nil {
		return nil, err
	}
	var info *jetstream.ObjectInfo
	putErr := func() error {
		ctx, cancel := callCtx(f, "call_timeout")
		defer cancel()
		return f.Call("objectstore.put", func() error {
			var err error
			info, err = obs.PutBytes(ctx, "obj", data)
			return err
		})
	}()
	if putErr != nil {
		failed := fmt.Sprintf("%s: %v", typeName(putErr), putErr)
		if f.NC.IsClosed() { // the fault closed the connection: the flow has no way left to look
			return map[string]any{"put": "failed", "error": failed, "left": "not checked: the connection is closed"}, nil
		}
		left, err := bucketMessages(f, js)
		if err != nil {
			return nil, fmt.Errorf("the put failed (%s); then %w", failed, err)
		}
		// Nothing of a failed put may stay: no chunks, no meta (the bucket was empty before).
		if left > 0 {
			return nil, &IntegrityError{fmt.Sprintf("the put failed (%s) and left %d message(s) in the bucket's stream", failed, left)}
		}
		return map[string]any{"put": "failed", "error": failed}, nil
	}
	var got []byte
	err = func() error {
		ctx, cancel := callCtx(f, "call_timeout")
		defer cancel()
		return f.Call("objectstore.get", func() error {
			var err error
			got, err = obs.GetBytes(ctx, "obj")
			return err
		})
	}()
	if errors.Is(err, jetstream.ErrDigestMismatch) { // the client's own verdict on what the put stored
		return nil, &IntegrityError{fmt.Sprintf("the put reported success (%d bytes, %d chunks) but the object reads back "+
			"corrupt: %v", info.Size, info.Chunks, err)}
	}
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(got, data) {
		return nil, &IntegrityError{fmt.Sprintf("the put reported success but the object reads back as %d of %d bytes "+
			"(or different bytes); put info: %d bytes, %d chunks", len(got), len(data), info.Size, info.Chunks)}
	}
	return map[string]any{"put": "ok", "chunks": info.Chunks}, nil
}

// bucketMessages: messages in the bucket's stream, asked through the flow's own connection
// once it answers (up to `settle` seconds, for a reconnect).
func bucketMessages(f *Flow, js jetstream.JetStream) (uint64, error) {
	end := time.Now().Add(f.Dur("settle"))
	var last error
	for time.Now().Before(end) {
		var n uint64
		last = f.Call("stream_info", func() error {
			ctx, cancel := context.WithTimeout(f.Ctx, time.Second)
			defer cancel()
			s, err := js.Stream(ctx, "OBJ_"+f.Bucket())
			if err != nil {
				return err
			}
			info, err := s.Info(ctx)
			if err != nil {
				return err
			}
			n = info.State.Msgs
			return nil
		})
		if last == nil {
			return n, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return 0, fmt.Errorf("the bucket's stream info did not answer within %gs (%v)", f.Float("settle"), last)
}
