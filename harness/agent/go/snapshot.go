package main

// What the agent reports about itself, in the JSON shapes harness/agent/snapshot.py reads
// (TaskInfo, SubInfo, ProcInfo), so the same checks decide for nats.go as for nats-py.
//
// A goroutine is reported as a task: id (the goroutine id), state (the runtime's wait
// reason: "chan receive", "select", "IO wait", ...), coro (its entry function: what the
// goroutine was started with, the counterpart of a coroutine's qualname), top (the
// innermost frame: where it sits), stack (outermost first, as the Python agent's await
// chain), created_at ("created by F in goroutine N at file:line"), role ("agent" for the
// agent's own, "flow" for the flow's goroutine, "" for everything else: the client's).

import (
	"bufio"
	"bytes"
	"fmt"
	"maps"
	"os"
	"reflect"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unsafe"

	"github.com/nats-io/nats.go"
)

func uintptrOf(ts *syscall.Timespec) uintptr { return uintptr(unsafe.Pointer(ts)) }

// roleOf labels a goroutine by who started it (goleak's named filters): the agent's own
// plumbing (main, the request reader's handlers, the heartbeat, the SIGUSR1 dumper and
// the runtime's signal-delivery loop) is "agent"; the goroutine running the flow is
// "flow"; everything else, whatever started it, is the client's ("").
func roleOf(g goroutine, entry string) string {
	switch {
	case strings.HasPrefix(g.createdBy, "main.(*agent).opStart"):
		return "flow"
	case entry == "main.main",
		strings.HasPrefix(g.createdBy, "main.main"),
		strings.HasPrefix(g.createdBy, "main.(*agent).serve"),
		strings.HasPrefix(entry, "os/signal."):
		return "agent"
	}
	return ""
}

func goid() int64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		id, _ := strconv.ParseInt(string(b[:i]), 10, 64)
		return id
	}
	return 0
}

type frame struct {
	fn   string // package-qualified function, e.g. github.com/nats-io/nats.go.(*Conn).readLoop
	args string // the raw argument words, e.g. 0xc000180000, 0xc0001a6000
	file string // file:line
}

type goroutine struct {
	id        int64
	state     string
	frames    []frame // innermost first, as the runtime prints them
	createdBy string
	createdAt string
}

var headerRE = regexp.MustCompile(`^goroutine (\d+) \[([^\]]*)\]:$`)

// parseGoroutines reads runtime.Stack(all=true) text.
func parseGoroutines(text []byte) []goroutine {
	var out []goroutine
	var g *goroutine
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var pending *frame
	var inCreated bool
	for sc.Scan() {
		line := sc.Text()
		if m := headerRE.FindStringSubmatch(line); m != nil {
			id, _ := strconv.ParseInt(m[1], 10, 64)
			state := m[2]
			if i := strings.IndexByte(state, ','); i >= 0 { // "chan receive, 2 minutes"
				state = state[:i]
			}
			out = append(out, goroutine{id: id, state: state})
			g = &out[len(out)-1]
			pending, inCreated = nil, false
			continue
		}
		if g == nil || line == "" {
			continue
		}
		if strings.HasPrefix(line, "\t") {
			loc := strings.TrimSpace(line)
			if i := strings.LastIndex(loc, " +0x"); i > 0 {
				loc = loc[:i]
			}
			if inCreated {
				g.createdAt = loc
			} else if pending != nil {
				pending.file = loc
				g.frames = append(g.frames, *pending)
				pending = nil
			}
			continue
		}
		if strings.HasPrefix(line, "created by ") {
			g.createdBy = strings.ReplaceAll(strings.TrimPrefix(line, "created by "), "%2e", ".")
			inCreated = true
			continue
		}
		if strings.HasPrefix(line, "...") {
			continue // "...additional frames elided..."
		}
		// The runtime escapes dots in a package path's last element ("nats%2ego"): undo it so
		// function names read as written (github.com/nats-io/nats.go.(*Conn).readLoop).
		line = strings.ReplaceAll(line, "%2e", ".")
		fn, args := line, ""
		if i := strings.LastIndex(line, "("); i > 0 && strings.HasSuffix(line, ")") {
			fn, args = line[:i], line[i+1:len(line)-1]
		}
		pending = &frame{fn: fn, args: args}
	}
	return out
}

func goroutines(subs []map[string]any) []map[string]any {
	bySubPtr := map[string]string{}
	for _, s := range subs {
		if p, ok := s["ptr"].(string); ok {
			bySubPtr[p] = s["subject"].(string)
		}
	}
	out := []map[string]any{}
	for _, g := range parseGoroutines(stackAll()) {
		var entry, top, module string
		if n := len(g.frames); n > 0 {
			e := g.frames[n-1]
			if e.fn == "runtime.goexit" && n > 1 { // a goroutine that has not run yet
				e = g.frames[n-2]
			}
			entry, module = e.fn, e.file
			top = g.frames[0].fn
		}
		role := roleOf(g, entry)
		if role == "flow" {
			// The flow's goroutine is named after the flow function it runs (e.g. main.nextIterate),
			// not the agent's runFlow wrapper: that is what a leak report should say.
			if fn := flowFunction(g.frames); fn != "" {
				entry = fn
			}
		}
		stack := make([]string, 0, len(g.frames))
		for i := len(g.frames) - 1; i >= 0; i-- {
			stack = append(stack, fmt.Sprintf("%s at %s", g.frames[i].fn, g.frames[i].file))
		}
		created := []string{}
		if g.createdBy != "" {
			// As the Python agent's creation site: "file:line in function" (plus the parent goroutine).
			fn, parent := g.createdBy, ""
			if i := strings.Index(fn, " in goroutine "); i > 0 {
				fn, parent = fn[:i], " (started "+fn[i+1:]+")"
			}
			created = append(created, fmt.Sprintf("%s in %s%s", g.createdAt, fn, parent))
		}
		out = append(out, map[string]any{
			"id":         g.id,
			"name":       fmt.Sprintf("goroutine %d", g.id),
			"coro":       entry,
			"top":        top,
			"module":     module,
			"state":      g.state,
			"role":       role,
			"stack":      stack,
			"created_at": created,
			"subject":    subjectOf(g, bySubPtr),
		})
	}
	return out
}

// flowFunction: the innermost agent frame that is a flow function, not the agent's plumbing
// (runFlow, byAPI, registration closures, the Flow's methods, closures inside a flow, the
// helpers several flows share: flowHelpers).
func flowFunction(frames []frame) string {
	for _, fr := range frames { // innermost first
		fn := fr.fn
		if !strings.HasPrefix(fn, "main.") || strings.Contains(fn, ".func") || strings.HasPrefix(fn, "main.(*") ||
			strings.HasPrefix(fn, "main.byAPI") || strings.HasPrefix(fn, "main.init") || flowHelpers[fn] {
			continue
		}
		return fn
	}
	return ""
}

// subjectOf: for a subscription's message goroutine (nats.go's (*Conn).waitForMsgs(nc, sub)),
// the subject it serves, found through the *Subscription argument the runtime prints. It
// tells the connection's request inbox apart from a flow's subscription.
func subjectOf(g goroutine, bySubPtr map[string]string) string {
	if n := len(g.frames); n > 0 && strings.HasSuffix(g.frames[n-1].fn, ".(*Conn).waitForMsgs") {
		parts := strings.Split(g.frames[n-1].args, ", ")
		if len(parts) >= 2 {
			return bySubPtr[strings.TrimSuffix(parts[1], "?")]
		}
	}
	return ""
}

// subscriptions is the client's own view of its subscriptions. nats.go's API gives only
// a count (NumSubscriptions), and the checks need each one's subject (the request inbox
// is the connection's, not a flow's): the agent reads the connection's subscription map
// read-only, under the connection's own subsMu, by reflection, and each subscription's
// pending count and state under its own mu (as Pending() and IsValid() read them), every
// lock bounded by the request's budget (locks.go). If a release lays its fields out
// differently, the count is reported with unknown subjects instead.
func subscriptions(nc *nats.Conn, b *lockBudget) []map[string]any {
	out := []map[string]any{}
	if nc == nil {
		return out
	}
	cv := reflect.ValueOf(nc).Elem()
	mu, subsMap := rwMutex(cv, "subsMu"), field(cv, "subs")
	if mu == nil || !subsMap.IsValid() || subsMap.Kind() != reflect.Map {
		for i := 0; i < nc.NumSubscriptions(); i++ {
			out = append(out, map[string]any{"sid": -1 - i, "subject": "?", "queue": "", "pending_msgs": 0, "closed": false})
		}
		return out
	}
	var list []*nats.Subscription
	b.rlock("nc.subsMu (the connection's subscriptions)", mu, func() {
		it := subsMap.MapRange()
		for it.Next() {
			if s, ok := it.Value().Interface().(*nats.Subscription); ok && s != nil {
				list = append(list, s)
			}
		}
	})
	for _, s := range list {
		sv := reflect.ValueOf(s).Elem()
		sid := int64(-1)
		if f := sv.FieldByName("sid"); f.IsValid() && f.Kind() == reflect.Int64 {
			sid = f.Int()
		}
		// A subscription in the connection's map is live (removeSub deletes it first); its
		// pending count is -1 where Pending() errs: closed, or a channel subscription.
		pending, closed := -1, false
		smu, conn, cl, typ, pm := mutex(sv, "mu"), field(sv, "conn"), field(sv, "closed"), field(sv, "typ"), field(sv, "pMsgs")
		if smu != nil && conn.IsValid() && cl.IsValid() && typ.IsValid() && pm.IsValid() {
			b.lock("the mu of subscription "+s.Subject, smu, func() {
				closed = conn.IsNil() || cl.Bool()
				if !closed && nats.SubscriptionType(typ.Int()) != nats.ChanSubscription {
					pending = int(pm.Int())
				}
			})
		} else {
			pending, _, _ = s.Pending()
			closed = !s.IsValid()
		}
		out = append(out, map[string]any{
			"sid":          sid,
			"subject":      s.Subject,
			"queue":        s.Queue,
			"pending_msgs": pending,
			"closed":       closed,
			"ptr":          fmt.Sprintf("%p", s),
		})
	}
	return out
}

// lastConn: the connection state last read under nc.mu, reported again while the lock is held.
var lastConn struct {
	sync.Mutex
	state map[string]any
}

// connState: the connection's status and the server's id for it, read under nc.mu as
// IsConnected(), IsClosed(), IsReconnecting() and GetClientID() read them, but bounded
// (locks.go). While the lock stays held the state is the one last read, except `closed`,
// which the connection's ClosedHandler (closedCh) tells without the lock.
func connState(nc *nats.Conn, closedCh <-chan struct{}, b *lockBudget) map[string]any {
	conn := map[string]any{"connected": false, "closed": false, "reconnecting": false, "cid": nil}
	if nc == nil {
		return conn
	}
	cv := reflect.ValueOf(nc).Elem()
	mu, status, info := rwMutex(cv, "mu"), field(cv, "status"), field(cv, "info")
	var cidF reflect.Value
	if info.IsValid() && info.Kind() == reflect.Struct {
		cidF = info.FieldByName("CID")
	}
	if mu == nil || !status.IsValid() || !cidF.IsValid() { // a release laid out otherwise: its own calls
		conn["connected"], conn["closed"], conn["reconnecting"] = nc.IsConnected(), nc.IsClosed(), nc.IsReconnecting()
		if cid, err := nc.GetClientID(); err == nil && nc.IsConnected() {
			conn["cid"] = cid
		}
		return conn
	}
	read := b.rlock("nc.mu (the connection's lock)", mu, func() {
		s := nats.Status(status.Int())
		connected := s == nats.CONNECTED || s == nats.DRAINING_SUBS || s == nats.DRAINING_PUBS
		conn["connected"], conn["closed"], conn["reconnecting"] = connected, s == nats.CLOSED, s == nats.RECONNECTING
		if cid := cidF.Uint(); connected && cid != 0 {
			conn["cid"] = cid
		}
	})
	lastConn.Lock()
	defer lastConn.Unlock()
	if read {
		lastConn.state = maps.Clone(conn)
		return conn
	}
	if lastConn.state != nil {
		conn = maps.Clone(lastConn.state)
	}
	select {
	case <-closedCh:
		conn["connected"], conn["closed"], conn["reconnecting"], conn["cid"] = false, true, false, nil
	default:
	}
	return conn
}

// openFDs is this process's open file descriptors and what each points at.
func openFDs() map[string]string {
	out := map[string]string{}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return out
	}
	for _, e := range ents {
		if t, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil {
			out[e.Name()] = t
		}
	}
	return out
}

func process() map[string]any {
	var rss int64
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			pages, _ := strconv.ParseInt(f[1], 10, 64)
			rss = pages * int64(os.Getpagesize())
		}
	}
	threads := 0
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "Threads:") {
				threads, _ = strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(l, "Threads:")))
			}
		}
	}
	return map[string]any{
		"pid":     os.Getpid(),
		"rss":     rss,
		"fds":     len(openFDs()),
		"cpu":     cpuSeconds(),
		"threads": threads,
	}
}
