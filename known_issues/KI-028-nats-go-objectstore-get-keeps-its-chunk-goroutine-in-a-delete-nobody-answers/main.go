// KI-028 — nats.go (jetstream package): ObjectStore.Get returns the whole object, but its
// chunk subscription's goroutine stays blocked for the JetStream request timeout (5 s) when
// the node holding the Get's ordered consumer (R1, on one node of an R3 bucket's stream) has
// died: the last chunk's callback (jetstream.(*obs).Get.func2) calls m.Sub.Unsubscribe(),
// which deletes the consumer with a synchronous API request inside the message callback, and
// with the consumer's only node down nobody answers it.
//
// Standalone: nats.go + three nats-server processes (../_servers_go, no harness code).
// Exit 1 reproduced, 0 not, 2 inconclusive. KI_ATTEMPTS=N sets the number of gets (3).
package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	ki "kiservers"
)

const marker = "(*obs).Get.func" // the Get's chunk callback

func main() {
	attempts := 3
	if n, err := strconv.Atoi(os.Getenv("KI_ATTEMPTS")); err == nil && n > 0 {
		attempts = n
	}
	c := ki.StartCluster()
	nc, err := nats.Connect(strings.Join(c.URLs, ","), nats.DontRandomize())
	if err != nil {
		ki.Inconclusive(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		ki.Inconclusive(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(attempts)*40*time.Second)
	defer cancel()
	kept, lines := 0, []string{}
	for i := 0; i < attempts; i++ {
		bucket := fmt.Sprintf("b%d", i)
		obs := createBucket(ctx, js, bucket)
		data := make([]byte, 1<<20) // 8 chunks
		rand.Read(data)
		for end := time.Now().Add(15 * time.Second); ; { // a stream just made may still elect its leader
			_, err := obs.PutBytes(ctx, "obj", data)
			if err == nil {
				break
			}
			if time.Now().After(end) {
				ki.Inconclusive(fmt.Errorf("put: %w", err))
			}
			time.Sleep(200 * time.Millisecond)
		}
		gctx, gcancel := context.WithTimeout(ctx, 10*time.Second)
		r, err := obs.Get(gctx, "obj")
		if err != nil {
			ki.Inconclusive(err)
		}
		// Nothing is read yet: the chunk callback blocks writing into the result's pipe, so the
		// transfer waits with its ordered consumer in place (the chunks already sent wait in the
		// subscription's queue: 300 ms lets them arrive). Kill the node that holds it.
		time.Sleep(300 * time.Millisecond)
		node := consumerNode(ctx, js, "OBJ_"+bucket)
		victim, _ := strconv.Atoi(strings.TrimPrefix(node, "n"))
		if victim < 1 || victim > len(c.URLs) {
			ki.Inconclusive(fmt.Errorf("the ordered consumer's node is %q", node))
		}
		c.Kill(victim - 1)
		got, err := io.ReadAll(r)
		r.Close()
		gcancel()
		returned := time.Now()
		if err != nil || len(got) != len(data) {
			lines = append(lines, fmt.Sprintf("attempt %d: consumer on %s killed; Get read %d bytes, err=%v (not the case looked for)", i+1, node, len(got), err))
		} else {
			where, blocked := "", time.Duration(0)
			for time.Since(returned) < 8*time.Second {
				in := ki.BlockedIn(marker)
				if strings.HasPrefix(in, "(no goroutine") {
					break
				}
				where, blocked = in, time.Since(returned)
				time.Sleep(100 * time.Millisecond)
			}
			if blocked >= time.Second {
				kept++
			}
			lines = append(lines, fmt.Sprintf("attempt %d: ordered consumer on %s, %s killed; Get returned all %d bytes; its chunk goroutine "+
				"still blocked %.1fs after: %s", i+1, node, node, len(got), blocked.Seconds(), orNone(where)))
		}
		c.Restart(victim - 1)
		c.WaitReady()
	}
	for _, l := range lines {
		fmt.Println("  " + l)
	}
	ki.Finish(kept > 0, fmt.Sprintf("nats.go %s: %d of %d gets left their chunk goroutine blocked >= 1s after returning (the consumer's node dead)",
		ki.NatsGoVersion(), kept, attempts))
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// createBucket: an R3 bucket; a cluster just up (or a node just back) may refuse placement
// for a moment: asked again within 15 s.
func createBucket(ctx context.Context, js jetstream.JetStream, bucket string) jetstream.ObjectStore {
	end := time.Now().Add(15 * time.Second)
	for {
		obs, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: bucket, Replicas: 3})
		if err == nil {
			return obs
		}
		if time.Now().After(end) {
			ki.Inconclusive(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// consumerNode: the node leading the stream's one consumer (the Get's ordered consumer, R1).
func consumerNode(ctx context.Context, js jetstream.JetStream, stream string) string {
	end := time.Now().Add(5 * time.Second)
	for time.Now().Before(end) {
		s, err := js.Stream(ctx, stream)
		if err == nil {
			lister := s.ListConsumers(ctx)
			for ci := range lister.Info() {
				if ci.Cluster != nil && ci.Cluster.Leader != "" {
					return ci.Cluster.Leader
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return ""
}
