package main

// Publish flows on nats.go, harness/flows/publish.py's twins (same names and params; the
// observer prepares publish.js's stream, deduplicating by Nats-Msg-Id): a bulk core publisher
// and a JetStream publisher awaiting each ack. Core publishing and JetStreamContext.Publish
// are in every release the agent builds for.

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

func init() {
	register("publish.core", publishCore)
	register("publish.js", publishJS)
}

func payload(f *Flow) []byte {
	b := make([]byte, f.Int("size"))
	rand.Read(b)
	return b
}

// publishCore: `count` core messages of `size` bytes as fast as the client takes them, then a
// flush. Nobody subscribes: what is measured is the client's outbound path. nc.Publish writes
// to the socket itself once its buffer is full (nats.go flushes in the caller past 32 KiB), so
// under an upstream stall a Publish blocks in the socket write (bounded by FlusherTimeout,
// a minute by default) — the counterpart of nats-py's publish on a full pending buffer.
func publishCore(f *Flow) (map[string]any, error) {
	data := payload(f)
	if err := f.Checkpoint("in_call"); err != nil {
		return nil, err
	}
	subject, count, sent := f.Subject()+".bulk", f.Int("count"), 0
	for i := 0; i < count; i++ {
		if err := f.CheckDeadline(fmt.Sprintf("%d of %d published", sent, count)); err != nil {
			return nil, err
		}
		if err := f.Call("publish", func() error { return f.NC.Publish(subject, data) }); err != nil {
			return nil, err
		}
		sent++
	}
	if err := f.Call("flush", func() error { return f.NC.FlushTimeout(f.Dur("flush_timeout")) }); err != nil {
		return nil, err
	}
	return map[string]any{"published": sent}, nil
}

// retryablePublish: a JetStream publish whose ack did not come, which a careful producer sends
// again with the same message id (nats-py's flow: timeout, no responders, reconnecting).
func retryablePublish(err error) bool {
	return isTimeout(err) || errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrNoStreamResponse)
}

// publishJS: js.Publish `count` messages awaiting each ack (ack_timeout), retrying a message
// (same Nats-Msg-Id) until acked or the flow's deadline; then the stream must hold exactly
// `count` messages, asked through the same connection.
func publishJS(f *Flow) (map[string]any, error) {
	js, err := f.NC.JetStream()
	if err != nil {
		return nil, err
	}
	data := payload(f)
	if err := f.Checkpoint("in_call"); err != nil {
		return nil, err
	}
	count, retries := f.Int("count"), 0
	for i := 0; i < count; i++ {
		for {
			if err := f.CheckDeadline(fmt.Sprintf("%d of %d acknowledged", i, count)); err != nil {
				return nil, err
			}
			err := f.Call("js.publish", func() error {
				_, err := js.Publish(f.Subject()+".m", data, nats.MsgId(strconv.Itoa(i)), nats.AckWait(f.Dur("ack_timeout")))
				return err
			})
			if err == nil {
				break
			}
			if !retryablePublish(err) {
				return nil, err
			}
			retries++
			time.Sleep(100 * time.Millisecond)
		}
	}
	var info *nats.StreamInfo
	if err := f.Call("stream_info", func() error {
		var err error
		info, err = js.StreamInfo(f.Stream(), nats.MaxWait(jsTimeout))
		return err
	}); err != nil {
		return nil, err
	}
	if int(info.State.Msgs) != count {
		return nil, &IntegrityError{fmt.Sprintf("the stream holds %d messages after %d acknowledged publishes", info.State.Msgs, count)}
	}
	return map[string]any{"published": count, "retries": retries}, nil
}
