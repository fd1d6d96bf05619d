//go:build !nojetstream && !nonextcontext

package main

// consumer.pause on nats.go: JetStream.PauseConsumer / ResumeConsumer (in the jetstream
// package from a release between v1.37.0 and v1.41.0; the agent builds it with the
// nonextcontext group, from v1.46.0). See flows_apis.go.

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func init() {
	register("consumer.pause", apiConsumerPause)
}

func apiConsumerPause(f *Flow) (map[string]any, error) {
	js, err := jetstream.New(f.NC)
	if err != nil {
		return nil, err
	}
	if err := f.Checkpoint("in_call"); err != nil {
		return nil, err
	}
	err = f.WaitAgain("consumer.pause", jsTimeout, func(ctx context.Context) error {
		_, err := js.PauseConsumer(ctx, f.Stream(), f.Consumer(), time.Now().Add(time.Minute))
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := jsCall(f, "consumer.resume", func(ctx context.Context) error {
		_, err := js.ResumeConsumer(ctx, f.Stream(), f.Consumer())
		return err
	}); err != nil {
		return nil, err
	}
	return continueResult(f, nil), fetchAfter(f)
}
