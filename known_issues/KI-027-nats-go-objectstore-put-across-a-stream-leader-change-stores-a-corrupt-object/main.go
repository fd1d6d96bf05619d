// KI-027 — nats.go (jetstream package): an ObjectStore.Put made while the bucket's stream
// changes leader (R3, 3-node cluster) reports success, yet the object reads back corrupt
// (ErrDigestMismatch). Each chunk's publish meets "no responders" during the election and
// PublishMsgAsync sends it again 250 ms later — the same *nats.Msg, whose Data is Put's one
// chunk buffer, by then holding the last chunk: every stored chunk is the last one.
//
// Standalone: nats.go + three nats-server processes (../_servers_go, no harness code).
// Exit 1 reproduced, 0 not, 2 inconclusive. KI_ATTEMPTS=N sets the number of puts (5).
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	ki "kiservers"
)

var attempts = 5 // KI_ATTEMPTS overrides

const (
	size  = 1 << 20 // 8 chunks of 128 KiB
	chunk = 128 * 1024
)

func main() {
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
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(attempts)*30*time.Second)
	defer cancel()
	corrupt, lines := 0, []string{}
	for i := 0; i < attempts; i++ {
		bucket := fmt.Sprintf("b%d", i)
		obs, err := createBucket(ctx, js, bucket)
		if err != nil {
			ki.Inconclusive(err)
		}
		stream := "OBJ_" + bucket
		waitLeader(ctx, js, stream)
		data := make([]byte, size)
		rand.Read(data)
		// The stream's leader steps down (the JetStream API's own request), then the put starts
		// while the replicas elect another.
		before := leader(ctx, js, stream)
		if _, err := nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+stream, nil, 5*time.Second); err != nil {
			ki.Inconclusive(fmt.Errorf("stepdown: %w", err))
		}
		pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
		t0 := time.Now()
		info, putErr := obs.PutBytes(pctx, "obj", data)
		took := time.Since(t0)
		pcancel()
		waitLeader(ctx, js, stream)
		after := leader(ctx, js, stream)
		if putErr != nil {
			lines = append(lines, fmt.Sprintf("attempt %d: leader %s -> %s, put failed after %.2fs (%v): nothing to read",
				i+1, before, after, took.Seconds(), putErr))
			continue
		}
		got, getErr := obs.GetBytes(ctx, "obj")
		order := storedOrder(ctx, js, stream, data)
		switch {
		case errors.Is(getErr, jetstream.ErrDigestMismatch):
			corrupt++
			lines = append(lines, fmt.Sprintf("attempt %d: leader %s -> %s, put reported success in %.2fs (%d bytes, %d chunks); "+
				"get: %v; chunks stored in the order %s", i+1, before, after, took.Seconds(), info.Size, info.Chunks, getErr, order))
		case getErr != nil:
			lines = append(lines, fmt.Sprintf("attempt %d: put ok, get failed otherwise: %v", i+1, getErr))
		case !bytes.Equal(got, data):
			corrupt++
			lines = append(lines, fmt.Sprintf("attempt %d: put ok, get returned different bytes without an error; order %s", i+1, order))
		default:
			lines = append(lines, fmt.Sprintf("attempt %d: leader %s -> %s, put ok in %.2fs, read back whole (order %s)",
				i+1, before, after, took.Seconds(), order))
		}
	}
	for _, l := range lines {
		fmt.Println("  " + l)
	}
	ki.Finish(corrupt > 0, fmt.Sprintf("nats.go %s: %d of %d puts made across a stream leader change reported success and read back corrupt",
		ki.NatsGoVersion(), corrupt, attempts))
}

// createBucket: an R3 bucket; a cluster just up may refuse placement for a moment (a peer
// not yet current): asked again within 10 s.
func createBucket(ctx context.Context, js jetstream.JetStream, bucket string) (jetstream.ObjectStore, error) {
	end := time.Now().Add(10 * time.Second)
	for {
		obs, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: bucket, Replicas: 3})
		if err == nil || time.Now().After(end) || !strings.Contains(err.Error(), "no suitable peers") {
			return obs, err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func leader(ctx context.Context, js jetstream.JetStream, stream string) string {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return "?"
	}
	info, err := s.Info(ctx)
	if err != nil || info.Cluster == nil {
		return "?"
	}
	return info.Cluster.Leader
}

func waitLeader(ctx context.Context, js jetstream.JetStream, stream string) {
	end := time.Now().Add(15 * time.Second)
	for time.Now().Before(end) {
		if l := leader(ctx, js, stream); l != "?" && l != "" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	ki.Inconclusive(fmt.Errorf("stream %s has no leader 15s after the stepdown", stream))
}

// storedOrder: which chunk of `data` each stored chunk message is, in stream order
// (e.g. "0 1 3 4 5 6 7 2").
func storedOrder(ctx context.Context, js jetstream.JetStream, stream string, data []byte) string {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return "?"
	}
	info, err := s.Info(ctx)
	if err != nil {
		return "?"
	}
	out := []string{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil || !strings.Contains(m.Subject, ".C.") {
			continue
		}
		idx := "?"
		for k := 0; k*chunk < len(data); k++ {
			if bytes.Equal(m.Data, data[k*chunk:min((k+1)*chunk, len(data))]) {
				idx = fmt.Sprint(k)
			}
		}
		out = append(out, idx)
	}
	return strings.Join(out, " ")
}
