package main

// Flow is what a flow sees of the harness while it runs in the agent: the Go counterpart
// of harness/agent/context.py's FlowContext (names, params, checkpoints, tracked calls,
// the subscription drain faults act on, the flow's own terminal action).

import (
	"context"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

type flowFunc func(*Flow) (map[string]any, error)

// flows: name -> run, filled by the flows files' init(); a flow a build lacks is in
// notApplicable with the reason instead (reported in hello).
var (
	flows         = map[string]flowFunc{}
	notApplicable = map[string]string{}
)

func register(name string, run flowFunc) { flows[name] = run }

// A flow under a trigger whose moment nats.go's version of the flow never has: reported
// not applicable ("flow@trigger" in the hello's not_applicable) rather than inconclusive.
func init() {
	notApplicable["kv.keys@api_request"] = "nats.go's kv.Keys (either API) makes no CONSUMER.INFO request of its own " +
		"(its watcher creates an ordered consumer): the moment this trigger waits for never comes"
}

// IntegrityError: the client handed the flow wrong data without an error (the messages check).
type IntegrityError struct{ msg string }

func (e *IntegrityError) Error() string { return e.msg }

// FlowGaveUp: the flow reached its own deadline before it had what it waits for.
type FlowGaveUp struct{ msg string }

func (e *FlowGaveUp) Error() string { return e.msg }

// NotApplicable: what the scenario asks for (e.g. `api: jetstream`) is not in this build's
// nats.go release; the outcome says so and the runner reports the scenario not applicable.
type NotApplicable struct{ msg string }

func (e *NotApplicable) Error() string { return e.msg }

// APIs a flow may be written against: nats.go has two JetStream APIs.
const (
	apiJetStream = "jetstream" // the jetstream package
	apiLegacy    = "legacy"    // nats.JetStreamContext
)

// byAPI runs the flow's implementation for its `api` param ("" = def): the scenario picks
// the jetstream package or the legacy JetStreamContext where both have the call.
func byAPI(def string, impls map[string]flowFunc) flowFunc {
	return func(f *Flow) (map[string]any, error) {
		api, _ := f.Params["api"].(string)
		if api == "" {
			api = def
		}
		if run := impls[api]; run != nil {
			return run(f)
		}
		if api == apiJetStream || api == apiLegacy {
			return nil, &NotApplicable{"this nats.go release has no jetstream package with this call (the agent uses it from v1.32.0)"}
		}
		return nil, fmt.Errorf("unknown api %q: jetstream or legacy", api)
	}
}

// Drainable is what drain faults act on: a subscription, or an iterator/consume context
// mapped onto it (sub_drain -> Drain, unsubscribe -> Unsubscribe or Stop).
type Drainable interface {
	Drain() error
	Unsubscribe() error
}

type pendingCall struct {
	label string
	since time.Time
	gid   int64
}

type Flow struct {
	a      *agent
	NC     *nats.Conn
	Tag    string
	Params map[string]any

	// Ctx is the flow's context: cancelled only by the runner's cancel_flow (as the Python
	// agent cancels the flow's task). It has no deadline: a flow that wants one makes it.
	Ctx       context.Context
	cancelFn  context.CancelFunc
	barrier   string
	released  chan struct{}
	relOnce   sync.Once
	deadline  time.Time
	mu        sync.Mutex
	sub       Drainable
	hooks     []func() error
	finishReq bool
	seq       int
	calls     map[int]pendingCall
	wasCancel bool
	ledger    ledger
}

func newFlow(a *agent, nc *nats.Conn, tag string, params map[string]any, barrier string, deadline time.Duration) *Flow {
	ctx, cancel := context.WithCancel(context.Background())
	f := &Flow{a: a, NC: nc, Tag: tag, Params: params, Ctx: ctx, cancelFn: cancel, barrier: barrier,
		released: make(chan struct{}), calls: map[int]pendingCall{}}
	if deadline > 0 {
		f.deadline = time.Now().Add(deadline)
	}
	return f
}

// Names: the same per-scenario names as harness.flows.Names.
func (f *Flow) Stream() string   { return "CHAOS_" + f.Tag }
func (f *Flow) Subject() string  { return "chaos." + f.Tag }
func (f *Flow) Consumer() string { return "c_" + f.Tag }
func (f *Flow) Bucket() string   { return "b_" + f.Tag }

func (f *Flow) Float(k string) float64     { return num(f.Params[k]) }
func (f *Flow) Int(k string) int           { return int(num(f.Params[k])) }
func (f *Flow) Bool(k string) bool         { b, _ := f.Params[k].(bool); return b }
func (f *Flow) Dur(k string) time.Duration { return seconds(f.Params[k]) }

func (f *Flow) cancel() {
	f.mu.Lock()
	f.wasCancel = true
	f.mu.Unlock()
	f.cancelFn()
}

func (f *Flow) cancelled() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.wasCancel
}

// CheckDeadline gives up (FlowGaveUp) once the flow's own deadline has passed.
func (f *Flow) CheckDeadline(progress string) error {
	if !f.deadline.IsZero() && time.Now().After(f.deadline) {
		return &FlowGaveUp{fmt.Sprintf("gave up at its deadline with %s", progress)}
	}
	return nil
}

// Checkpoint marks a named point; if the scenario's trigger is this barrier, it waits
// for the runner's release (or the flow's cancellation).
func (f *Flow) Checkpoint(name string) error {
	f.a.emit("checkpoint", map[string]any{"name": name})
	if name == f.barrier {
		select {
		case <-f.released:
		case <-f.Ctx.Done():
			return f.Ctx.Err()
		}
	}
	return nil
}

func (f *Flow) release() { f.relOnce.Do(func() { close(f.released) }) }

// Track names the subscription (or iterator) drain faults act on.
func (f *Flow) Track(d Drainable) {
	f.mu.Lock()
	f.sub = d
	f.mu.Unlock()
}

func (f *Flow) tracked() Drainable {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sub
}

// OnFinish registers the flow's own terminal action (e.g. stopping an iterator), run when
// the runner says the flow has everything.
func (f *Flow) OnFinish(hook func() error) {
	f.mu.Lock()
	f.hooks = append(f.hooks, hook)
	f.mu.Unlock()
}

func (f *Flow) FinishRequested() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.finishReq
}

func (f *Flow) finish() (int, []string) {
	f.mu.Lock()
	f.finishReq = true
	hooks := append([]func() error(nil), f.hooks...)
	f.mu.Unlock()
	errs := []string{}
	for _, h := range hooks {
		if err := h(); err != nil { // reported, not raised: the finding is the iterator's
			errs = append(errs, fmt.Sprintf("%s: %v", typeName(err), err))
		}
	}
	return len(hooks), errs
}

// Delivered accounts one JetStream delivery handed to the flow (the delivery check's ledger),
// from the message's metadata: legacy *nats.Msg or jetstream.Msg.
func (f *Flow) Delivered(consumer string, streamSeq, numDelivered uint64) {
	f.ledger.record(consumer, streamSeq, numDelivered)
}

func (f *Flow) DeliveredMsg(m *nats.Msg) {
	if md, err := m.Metadata(); err == nil {
		f.Delivered(md.Consumer, md.Sequence.Stream, md.NumDelivered)
	}
}

// Received reports the message ids the flow has in hand.
func (f *Flow) Received(ids []string) {
	if len(ids) > 1000 {
		ids = ids[:1000]
	}
	f.a.emit("received", map[string]any{"count": len(ids), "ids": ids})
}

// Call runs a client call tracked as pending while it runs (the stuck check watches it).
func (f *Flow) Call(label string, fn func() error) error {
	f.mu.Lock()
	f.seq++
	k := f.seq
	f.calls[k] = pendingCall{label: label, since: time.Now(), gid: goid()}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.calls, k)
		f.mu.Unlock()
	}()
	return fn()
}

func (f *Flow) pendingCalls() []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	keys := make([]int, 0, len(f.calls))
	for k := range f.calls {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	out := make([]map[string]any, 0, len(keys))
	for _, k := range keys {
		p := f.calls[k]
		out = append(out, map[string]any{"label": p.label, "age": round4(time.Since(p.since).Seconds()), "task": p.gid})
	}
	return out
}

// callCtx is the context a user hands a client call: with a deadline of `call_timeout`
// seconds, or none at all when it is 0 (the client's own defaults then decide). Either way
// the caller cancels it when the call is over (defer cancel()), as careful Go code does:
// nats.go ties goroutines to a call's context (e.g. an unsubscribe on ctx.Done()).
func callCtx(f *Flow, param string) (context.Context, context.CancelFunc) {
	if d := f.Dur(param); d > 0 {
		return context.WithTimeout(f.Ctx, d)
	}
	return context.WithCancel(f.Ctx)
}

// flowHelpers: functions several flows call to make their client calls. A goroutine blocked
// in one is reported under the flow function that called it (flowFunction), as it was
// before the code was shared.
var flowHelpers = map[string]bool{"main.readObject": true, "main.collectAcked": true, "main.ackAll": true}

// readObject: the objectstore.get call of both APIs (the jetstream package's and the legacy
// one's differ only in how the object is opened): read it whole, and a result shorter than
// the object put is an integrity error, since no error was returned.
func readObject(f *Flow, open func() (io.ReadCloser, error)) (map[string]any, error) {
	n := 0
	err := f.Call("objectstore.get", func() error {
		r, err := open()
		if err != nil {
			return err
		}
		defer r.Close()
		data, err := io.ReadAll(r)
		n = len(data)
		return err
	})
	if err != nil {
		return nil, err
	}
	if n != f.Int("size") {
		return nil, &IntegrityError{fmt.Sprintf("object truncated: got %d of %d bytes, no error returned", n, f.Int("size"))}
	}
	return map[string]any{"bytes": n}, nil
}

// tally: distinct message ids received, and how many arrived again (as harness.flows.next.tally).
func tally(got []string) map[string]any {
	seen := map[string]bool{}
	for _, g := range got {
		seen[g] = true
	}
	return map[string]any{"received": len(seen), "redelivered": len(got) - len(seen)}
}

func distinct(got []string) int {
	seen := map[string]bool{}
	for _, g := range got {
		seen[g] = true
	}
	return len(seen)
}

func contains(got []string, s string) bool {
	for _, g := range got {
		if g == s {
			return true
		}
	}
	return false
}

// accountInfo is the recovery probe's JetStream call, through the API every release has.
func accountInfo(nc *nats.Conn, bound time.Duration) error {
	js, err := nc.JetStream(nats.MaxWait(bound))
	if err != nil {
		return err
	}
	_, err = js.AccountInfo()
	return err
}
