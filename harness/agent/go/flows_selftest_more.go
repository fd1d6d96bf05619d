package main

// More self-test flows (same names as harness/flows/selftest.py): a process that dies or
// freezes, a socket left open, a connection close() forgot, a goroutine connect started that
// close() no longer ends, a message the client loses, a terminal action that never returns.
// Each is the nats.go counterpart of the Python one, so every check is proven on both clients.

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"reflect"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/nats-io/nats.go"
)

func init() {
	register("selftest.crash", selftestCrash)
	register("selftest.block", selftestBlock)
	register("selftest.leak_socket", func(f *Flow) (map[string]any, error) { return selftestSocket(f, true) })
	register("selftest.clean_socket", func(f *Flow) (map[string]any, error) { return selftestSocket(f, false) })
	register("selftest.connection_outlives_close", selftestConnectionOutlivesClose)
	register("selftest.pinger_outlives_close", selftestPingerOutlivesClose)
	register("selftest.lose_message", func(f *Flow) (map[string]any, error) { return selftestLossyFetch(f, "3") })
	register("selftest.keep_messages", func(f *Flow) (map[string]any, error) { return selftestLossyFetch(f, "") })
	register("selftest.hang_in_finish", selftestHangInFinish)
}

// selftestCrash: the client process dies abruptly (as a runtime fatal error would).
func selftestCrash(f *Flow) (map[string]any, error) {
	if err := f.Checkpoint("in_call"); err != nil {
		return nil, err
	}
	fmt.Fprintln(os.Stderr, "selftest.crash: about to die")
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

// selftestBlock: the whole process stops for `seconds` with idle CPU (SIGSTOP: as a
// stop-the-world pause, a debugger or a cgroup freezer would stop it) — Go's counterpart of
// an event loop blocked in a synchronous call: nothing runs, not even the heartbeat. A child
// resumes it (SIGCONT); the child dies with the agent (Pdeathsig), so it never outlives it.
func selftestBlock(f *Flow) (map[string]any, error) {
	if err := f.Checkpoint("in_call"); err != nil {
		return nil, err
	}
	err := f.Call("block", func() error {
		cmd := exec.Command("/bin/sh", "-c", fmt.Sprintf("sleep %g; kill -CONT %d", f.Float("seconds"), os.Getpid()))
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return err
		}
		syscall.Kill(os.Getpid(), syscall.SIGSTOP)
		err := cmd.Wait()
		// The stack dump the runner asked for while the process was stopped (SIGUSR1) is
		// written on resume: stay in the call a moment, so the dump shows where it froze.
		time.Sleep(300 * time.Millisecond)
		return err
	})
	return map[string]any{}, err
}

// serverConn: a plain TCP connection to the server the client uses (as a second transport would be).
func serverConn(nc *nats.Conn) (net.Conn, error) {
	u, err := url.Parse(nc.ConnectedUrl())
	if err != nil {
		return nil, err
	}
	return net.DialTimeout("tcp", u.Host, 2*time.Second)
}

// selftestSocket: open a socket to the server and keep it for good (a transport a reconnect
// forgot), or close it before returning.
func selftestSocket(f *Flow, leak bool) (map[string]any, error) {
	if err := f.Checkpoint("in_call"); err != nil {
		return nil, err
	}
	c, err := serverConn(f.NC)
	if err != nil {
		return nil, err
	}
	if leak {
		leaked = append(leaked, c)
		return map[string]any{}, nil
	}
	return map[string]any{}, c.Close()
}

// connField: the connection's unexported field `name`, addressable (the agent reads nats.go's
// internals only in self-tests and snapshots, as the Python self-tests reach into nats-py's).
func connField(nc *nats.Conn, name string) (reflect.Value, error) {
	fv := reflect.ValueOf(nc).Elem().FieldByName(name)
	if !fv.IsValid() {
		return reflect.Value{}, fmt.Errorf("this nats.go release's Conn has no field %q", name)
	}
	return reflect.NewAt(fv.Type(), unsafe.Pointer(fv.UnsafeAddr())).Elem(), nil
}

func connLock(nc *nats.Conn) (*sync.RWMutex, error) {
	mu, err := connField(nc, "mu")
	if err != nil {
		return nil, err
	}
	l, ok := mu.Addr().Interface().(*sync.RWMutex)
	if !ok {
		return nil, fmt.Errorf("this nats.go release's Conn.mu is a %s", mu.Type())
	}
	return l, nil
}

// selftestConnectionOutlivesClose: keep a duplicate of the connection's socket (File() dups
// the descriptor), so close() closes its own descriptor but not the socket: the server keeps
// the connection, the process the descriptor.
func selftestConnectionOutlivesClose(f *Flow) (map[string]any, error) {
	if err := f.Checkpoint("in_call"); err != nil {
		return nil, err
	}
	mu, err := connLock(f.NC)
	if err != nil {
		return nil, err
	}
	cf, err := connField(f.NC, "conn")
	if err != nil {
		return nil, err
	}
	mu.RLock()
	c, _ := cf.Interface().(net.Conn)
	mu.RUnlock()
	tcp, ok := c.(*net.TCPConn)
	if !ok {
		return nil, fmt.Errorf("the connection's transport is a %T, not a TCP connection", c)
	}
	dup, err := tcp.File()
	if err != nil {
		return nil, err
	}
	leaked = append(leaked, dup)
	return map[string]any{}, nil
}

// selftestPingerOutlivesClose: hide the connection's flusher from close(). nats.go's pinger is
// a timer, not a goroutine; the goroutine connect starts and close() ends through the
// connection is the flusher, which waits on the flush channel close() kicks: the flow swaps
// the channel, so close() kicks a new one and the flusher, started at connect (present at the
// baseline), waits on the old one for good.
func selftestPingerOutlivesClose(f *Flow) (map[string]any, error) {
	if err := f.Checkpoint("in_call"); err != nil {
		return nil, err
	}
	mu, err := connLock(f.NC)
	if err != nil {
		return nil, err
	}
	fch, err := connField(f.NC, "fch")
	if err != nil {
		return nil, err
	}
	mu.Lock()
	leaked = append(leaked, fch.Interface())
	fch.Set(reflect.MakeChan(fch.Type(), fch.Cap()))
	mu.Unlock()
	return map[string]any{}, nil
}

// selftestLossyFetch: fetch every message from the durable and ack it; the lossy client
// (lose != "") acks one message the flow never sees, so the flow gives up at its deadline.
func selftestLossyFetch(f *Flow, lose string) (map[string]any, error) {
	sub, err := bindPull(f)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	got := []string{}
	count := f.Int("count")
	for distinct(got) < count {
		if err := f.CheckDeadline(fmt.Sprintf("%d of %d messages", distinct(got), count)); err != nil {
			return nil, err
		}
		var msgs []*nats.Msg
		err := f.Call("fetch", func() error {
			var err error
			msgs, err = sub.Fetch(5, nats.MaxWait(500*time.Millisecond))
			return err
		})
		if isTimeout(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			f.DeliveredMsg(m)
			if err := m.Ack(); err != nil {
				return nil, err
			}
			if string(m.Data) != lose {
				got = append(got, string(m.Data))
			}
		}
	}
	return map[string]any{"received": distinct(got)}, nil
}

// selftestHangInFinish: the flow's terminal action (as a client's Stop or Unsubscribe might)
// never returns; the iterator it should have woken stays pending.
func selftestHangInFinish(f *Flow) (map[string]any, error) {
	f.OnFinish(func() error { select {} })
	return selftestIterator(f, false)
}
