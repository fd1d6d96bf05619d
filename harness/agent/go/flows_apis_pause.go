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
	err = f.WaitInCall("consumer.pause", func(ctx context.Context) error {
		_, err := js.PauseConsumer(ctx, f.Stream(), f.Consumer(), time.Now().Add(time.Minute))
		return err
	})
	if err != nil {
		return nil, err
	}
	resume := func(ctx context.Context) error {
		_, err := js.ResumeConsumer(ctx, f.Stream(), f.Consumer())
		return err
	}
	if err := jsCall(f, "consumer.resume", resume); err != nil {
		return nil, err
	}
	// A pause the caller gave up on still reaches the server, and JetStream answers API
	// requests concurrently: sent before the resume, it can be applied after it (1-2 of 200
	// pause+resume pairs on one connection, measured with none of the harness). A careful
	// user who wants the consumer running checks, and resumes again.
	late := 0
	resumeIfPaused := func() error {
		return jsCall(f, "consumer.info", func(ctx context.Context) error {
			cons, err := js.Consumer(ctx, f.Stream(), f.Consumer())
			if err != nil {
				return err
			}
			if info, err := cons.Info(ctx); err != nil || !info.Paused {
				return err
			}
			late++
			return resume(ctx)
		})
	}
	err = fetchAfter(f, resumeIfPaused)
	res := continueResult(f, nil)
	res["late_pauses"] = late
	return res, err
}
