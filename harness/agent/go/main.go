// Command agent hosts nats.go as the client under test and speaks the harness's agent
// protocol (JSON lines on stdin/stdout), the same one harness/agent/agent_side.py speaks
// for nats-py: ops connect/start/release/finish/action/cancel_flow/pending/snapshot/fds/
// probe/memory/close/exit; events hello/hb/checkpoint/received/outcome/conn.
//
// It is built once per nats.go version by harness/targets/nats_go.py; it knows flows by
// name only (the runner's observer prepares what they need, in Python).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
)

// heartbeat is the period of the "hb" event, as in the Python agent: the runner measures
// gaps and CPU share between heartbeats as emitted.
const heartbeat = 100 * time.Millisecond

const natsModule = "github.com/nats-io/nats.go"

type request map[string]any

type agent struct {
	outMu sync.Mutex
	out   *os.File
	t0    time.Time

	mu       sync.Mutex
	nc       *nats.Conn
	flow     *Flow
	flowDone chan struct{}
	closed   chan struct{} // closed by the connection's ClosedHandler
}

func main() {
	// SIGUSR1: every goroutine's stack to stderr (the runner's live dump, as faulthandler's).
	// SIGINT: the runner ends the agent, not the terminal's Ctrl-C.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGUSR1)
	signal.Ignore(syscall.SIGINT)
	a := &agent{out: os.Stdout, t0: time.Now()}
	go func() {
		for range sigs {
			buf := stackAll()
			fmt.Fprintf(os.Stderr, "agent: SIGUSR1: stacks of every goroutine\n%s\n", buf)
		}
	}()
	go a.heartbeat()
	a.emit("hello", map[string]any{
		"pid":            os.Getpid(),
		"nats_go":        natsVersion(),
		"client":         map[string]any{"impl": "nats.go", "version": natsVersion()},
		"not_applicable": notApplicable,
		"flows":          flowNames(),
	})
	a.serve()
}

// flowNames: every flow this build runs; the runner reports any other not applicable.
func flowNames() []string {
	out := make([]string, 0, len(flows))
	for name := range flows {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

func natsVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == natsModule {
				if d.Replace != nil {
					// A checkout (a directory replace has no version, or "(devel)"): what the build stamped in.
					if checkoutVersion != "" && (d.Replace.Version == "" || d.Replace.Version == "(devel)") {
						return checkoutVersion
					}
					return d.Replace.Version
				}
				return d.Version
			}
		}
	}
	return "?"
}

// -- output ---------------------------------------------------------------------

func (a *agent) write(msg map[string]any) {
	b, err := json.Marshal(msg)
	if err != nil {
		b, _ = json.Marshal(map[string]any{"ev": "agent-error", "error": err.Error()})
	}
	a.outMu.Lock()
	defer a.outMu.Unlock()
	a.out.Write(append(b, '\n'))
}

func (a *agent) emit(ev string, kw map[string]any) {
	msg := map[string]any{"ev": ev, "t": round4(time.Since(a.t0).Seconds())}
	for k, v := range kw {
		msg[k] = v
	}
	a.write(msg)
}

func (a *agent) heartbeat() {
	// Stamped with the host's monotonic clock and the process's CPU time (as the Python
	// agent does), plus the number of tracked calls in progress: Go has no event loop to
	// block, so the runner's spin check is CPU burnt while the flow waits in a call.
	t := time.NewTicker(heartbeat)
	defer t.Stop()
	for {
		a.write(map[string]any{"ev": "hb", "m": monotonic(), "c": cpuSeconds(), "w": a.waiting()})
		<-t.C
	}
}

func (a *agent) waiting() int {
	a.mu.Lock()
	f := a.flow
	a.mu.Unlock()
	if f == nil {
		return 0
	}
	return len(f.pendingCalls())
}

// -- requests -------------------------------------------------------------------

func (a *agent) serve() {
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var req request
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			fmt.Fprintf(os.Stderr, "agent: bad request line: %v\n", err)
			continue
		}
		if req["op"] == "exit" {
			a.handle(req)
			os.Exit(0)
		}
		go a.handle(req)
	}
	os.Exit(0) // the runner is gone
}

func (a *agent) handle(req request) {
	id := req["id"]
	op, _ := req["op"].(string)
	reply, err := func() (reply map[string]any, err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
			}
		}()
		switch op {
		case "connect":
			return a.opConnect(req)
		case "start":
			return a.opStart(req)
		case "release":
			return a.withFlow(func(f *Flow) (map[string]any, error) { f.release(); return nil, nil })
		case "finish":
			return a.withFlow(func(f *Flow) (map[string]any, error) {
				n, errs := f.finish()
				return map[string]any{"hooks": n, "hook_errors": errs}, nil
			})
		case "action":
			return a.opAction(req)
		case "cancel_flow":
			return a.opCancelFlow(req)
		case "pending":
			return map[string]any{"pending": a.pending()}, nil
		case "snapshot":
			return a.opSnapshot()
		case "fds":
			return map[string]any{"fds": openFDs()}, nil
		case "memory":
			return a.opMemory(req)
		case "probe":
			return a.opProbe(req)
		case "close":
			return a.opClose(req)
		case "exit":
			return nil, nil
		}
		return nil, fmt.Errorf("unknown op %q", op)
	}()
	if err != nil {
		msg := err.Error()
		a.write(map[string]any{"re": id, "ok": false, "error": fmt.Sprintf("%s: %s", typeName(err), firstLine(msg)), "trace": tail(msg, 2000)})
		return
	}
	out := map[string]any{"re": id, "ok": true}
	for k, v := range reply {
		out[k] = v
	}
	a.write(out)
}

func (a *agent) withFlow(fn func(*Flow) (map[string]any, error)) (map[string]any, error) {
	a.mu.Lock()
	f := a.flow
	a.mu.Unlock()
	if f == nil {
		return nil, errors.New("no flow started")
	}
	return fn(f)
}

func (a *agent) conn() *nats.Conn {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.nc
}

// opConnect maps the runner's client options (nats-py's names, the harness's vocabulary)
// to nats.go options. An option nats.go has no equivalent for is refused, not ignored.
func (a *agent) opConnect(req request) (map[string]any, error) {
	opts, _ := req["options"].(map[string]any)
	var servers []string
	o := []nats.Option{
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			kw := map[string]any{"state": "disconnected"}
			if err != nil {
				kw["error"] = err.Error()
			}
			a.emit("conn", kw)
		}),
		nats.ReconnectHandler(func(*nats.Conn) { a.emit("conn", map[string]any{"state": "reconnected"}) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			a.emit("conn", map[string]any{"state": "error", "error": fmt.Sprintf("%s: %v", typeName(err), err)})
		}),
	}
	closed := make(chan struct{})
	o = append(o, nats.ClosedHandler(func(*nats.Conn) {
		a.emit("conn", map[string]any{"state": "closed"})
		close(closed)
	}))
	var user, pass string
	for k, v := range opts {
		switch k {
		case "servers":
			for _, s := range v.([]any) {
				servers = append(servers, s.(string))
			}
		case "user":
			user, _ = v.(string)
		case "password":
			pass, _ = v.(string)
		case "connect_timeout":
			o = append(o, nats.Timeout(seconds(v)))
		case "reconnect_time_wait":
			o = append(o, nats.ReconnectWait(seconds(v)))
		case "max_reconnect_attempts":
			o = append(o, nats.MaxReconnects(int(num(v))))
		case "ping_interval":
			o = append(o, nats.PingInterval(seconds(v)))
		case "max_outstanding_pings":
			o = append(o, nats.MaxPingsOutstanding(int(num(v))))
		case "name":
			o = append(o, nats.Name(v.(string)))
		case "dont_randomize": // a cluster's nodes in the order given (the client starts on the first node's proxy)
			if b, _ := v.(bool); b {
				o = append(o, nats.DontRandomize())
			}
		default:
			return nil, fmt.Errorf("client option %q has no nats.go equivalent in this agent", k)
		}
	}
	if user != "" {
		o = append(o, nats.UserInfo(user, pass))
	}
	nc, err := nats.Connect(strings.Join(servers, ","), o...)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.nc, a.closed = nc, closed
	a.mu.Unlock()
	return nil, nil
}

func (a *agent) opStart(req request) (map[string]any, error) {
	name, _ := req["flow"].(string)
	run, ok := flows[name]
	if !ok {
		if why, na := notApplicable[name]; na {
			return nil, fmt.Errorf("flow %s is not applicable to nats.go %s: %s", name, natsVersion(), why)
		}
		return nil, fmt.Errorf("unknown flow %s", name)
	}
	nc := a.conn()
	if nc == nil {
		return nil, errors.New("not connected")
	}
	params, _ := req["params"].(map[string]any)
	barrier, _ := req["barrier"].(string)
	tag, _ := req["tag"].(string)
	var deadline time.Duration
	if d, ok := req["deadline"].(float64); ok && d > 0 {
		deadline = time.Duration(d * float64(time.Second))
	}
	f := newFlow(a, nc, tag, params, barrier, deadline)
	done := make(chan struct{})
	a.mu.Lock()
	a.flow, a.flowDone = f, done
	a.mu.Unlock()
	go a.runFlow(f, run, done)
	return nil, nil
}

func (a *agent) runFlow(f *Flow, run flowFunc, done chan struct{}) {
	defer close(done)
	t := time.Now()
	result, err := func() (res map[string]any, err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic in flow: %v\n%s", r, debug.Stack())
			}
		}()
		return run(f)
	}()
	dur := round4(time.Since(t).Seconds())
	withLedger := func(kw map[string]any) map[string]any {
		if d := f.ledger.summary(); d != nil {
			kw["deliveries"] = d
		}
		if c := continuationOf(f); c != nil {
			kw["continuation"] = c
		}
		return kw
	}
	var na *NotApplicable
	switch {
	case err == nil:
		a.emit("outcome", withLedger(map[string]any{"status": "ok", "result": result, "duration": dur}))
	case errors.As(err, &na):
		a.emit("outcome", map[string]any{"status": "not_applicable", "message": na.msg, "duration": dur})
	case f.cancelled():
		a.emit("outcome", withLedger(map[string]any{"status": "cancelled", "duration": dur, "message": err.Error()}))
	default:
		a.emit("outcome", withLedger(map[string]any{"status": "error", "exc_type": typeName(err), "message": tail(err.Error(), 500), "duration": dur}))
	}
}

// opAction is a client-side drain fault, mapped to nats.go: the flow's tracked
// subscription or iterator (Drain / Unsubscribe-or-Stop), or the connection.
func (a *agent) opAction(req request) (map[string]any, error) {
	name, _ := req["name"].(string)
	if how, ok := cancelKinds[name]; ok { // the cancel family (cancel.go)
		return a.cancelWaiting(how, req)
	}
	nc := a.conn()
	var sub Drainable
	a.mu.Lock()
	if a.flow != nil {
		sub = a.flow.tracked()
	}
	closed := a.closed
	a.mu.Unlock()
	if (name == "sub_drain" || name == "unsubscribe") && sub == nil {
		return nil, errors.New("the flow tracks no subscription (f.Track) to act on")
	}
	t := time.Now()
	var err error
	switch name {
	case "sub_drain":
		err = sub.Drain()
	case "unsubscribe":
		err = sub.Unsubscribe()
	case "nc_drain":
		// nc.Drain() returns at once and drains in the background; the fault (as nats-py's
		// awaited drain) is complete when the connection is closed.
		if err = nc.Drain(); err == nil {
			<-closed
		}
	case "close":
		nc.Close()
	default:
		return nil, fmt.Errorf("unknown action %s", name)
	}
	if err != nil {
		return nil, err
	}
	return map[string]any{"took": round4(time.Since(t).Seconds())}, nil
}

func (a *agent) opCancelFlow(req request) (map[string]any, error) {
	a.mu.Lock()
	f, done := a.flow, a.flowDone
	a.mu.Unlock()
	if f == nil {
		return map[string]any{"done": false}, nil
	}
	f.cancel()
	select {
	case <-done:
		return map[string]any{"done": true}, nil
	case <-time.After(seconds(orNum(req["timeout"], 2.0))):
		return map[string]any{"done": false}, nil
	}
}

func (a *agent) pending() []map[string]any {
	a.mu.Lock()
	f := a.flow
	a.mu.Unlock()
	if f == nil {
		return []map[string]any{}
	}
	return f.pendingCalls()
}

// opSnapshot never waits on the client's locks (locks.go): one it found held is in "busy".
func (a *agent) opSnapshot() (map[string]any, error) {
	nc := a.conn()
	a.mu.Lock()
	done, closed := a.flowDone, a.closed
	a.mu.Unlock()
	b := newLockBudget()
	conn := connState(nc, closed, b)
	flowDone := false
	if done != nil {
		select {
		case <-done:
			flowDone = true
		default:
		}
	}
	subs := subscriptions(nc, b)
	tasks := goroutines(subs)
	for _, s := range subs {
		delete(s, "ptr") // only for matching goroutines to subscriptions
	}
	return map[string]any{
		"tasks":     tasks,
		"subs":      subs,
		"pending":   a.pending(),
		"proc":      process(),
		"conn":      conn,
		"flow_done": flowDone,
		"busy":      b.busy,
	}, nil
}

// opProbe is the recovery check: a request round trip and a JetStream API call on the
// same connection.
func (a *agent) opProbe(req request) (map[string]any, error) {
	nc := a.conn()
	if nc == nil {
		return nil, errors.New("not connected")
	}
	bound := seconds(orNum(req["bound"], 1.0))
	subject, _ := req["subject"].(string)
	t := time.Now()
	if _, err := nc.Request(subject, []byte("ping"), bound); err != nil {
		return nil, err
	}
	rtt := time.Since(t)
	if err := accountInfo(nc, bound); err != nil {
		return nil, err
	}
	return map[string]any{"rtt": round4(rtt.Seconds()), "total": round4(time.Since(t).Seconds())}, nil
}

func (a *agent) opClose(req request) (map[string]any, error) {
	nc := a.conn()
	t := time.Now()
	if nc == nil || nc.IsClosed() {
		return map[string]any{"took": 0.0}, nil
	}
	done := make(chan struct{})
	go func() { nc.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(seconds(orNum(req["timeout"], 5.0))):
		return nil, fmt.Errorf("nc.Close() did not return within %.1fs", orNum(req["timeout"], 5.0))
	}
	return map[string]any{"took": round4(time.Since(t).Seconds())}, nil
}

// -- small helpers ----------------------------------------------------------------

func monotonic() float64 {
	var ts syscall.Timespec
	// CLOCK_MONOTONIC (1): the clock the Python agent's time.monotonic() reads.
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 1, uintptrOf(&ts), 0)
	return float64(ts.Sec) + float64(ts.Nsec)/1e9
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return tv(ru.Utime) + tv(ru.Stime)
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

func round4(x float64) float64 { return float64(int64(x*10000+0.5)) / 10000 }

func num(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case int:
		return float64(x)
	case bool:
		if x {
			return 1
		}
	}
	return 0
}

func orNum(v any, def float64) float64 {
	if v == nil {
		return def
	}
	return num(v)
}

func seconds(v any) time.Duration { return time.Duration(num(v) * float64(time.Second)) }

func typeName(err error) string {
	var ie *IntegrityError
	var gu *FlowGaveUp
	switch {
	case errors.As(err, &ie):
		return "main.IntegrityError"
	case errors.As(err, &gu):
		return "main.FlowGaveUp"
	case errors.Is(err, context.DeadlineExceeded):
		return "context.DeadlineExceeded"
	case errors.Is(err, context.Canceled):
		return "context.Canceled"
	}
	return strings.TrimPrefix(fmt.Sprintf("%T", err), "*")
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func stackAll() []byte {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return buf[:n]
		}
		buf = make([]byte, len(buf)*2)
	}
}
